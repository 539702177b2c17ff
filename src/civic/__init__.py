"""Civic: one open platform on which a Korean public body runs smart public services."""

__version__ = "0.1.0"
