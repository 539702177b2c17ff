"""The web shell shared by every service: errors, sessions, access, templates, pages."""
