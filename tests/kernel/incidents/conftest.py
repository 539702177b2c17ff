"""The live server fixture of the realtime tests serves the incident tests too."""

from tests.kernel.realtime.conftest import served

__all__ = ["served"]
