"""The one settings root: kernel parts plus a section per service (CIVIC_* and civic.toml)."""

from civic.kernel.settings import KernelSettings


class Settings(KernelSettings):
    """Every setting of the platform; each service validates its own section of `services`."""


def load_settings() -> Settings:
    """Read settings from the environment and civic.toml, refusing bad values with a message."""
    return Settings()
