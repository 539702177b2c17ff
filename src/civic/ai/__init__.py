"""Models and what runs them: vision, speech, language, learning."""
