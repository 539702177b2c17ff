"""The public services; each is a package registered through the `civic.services` entry point."""
