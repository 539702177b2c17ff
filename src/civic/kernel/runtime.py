"""The running kernel: typed state shared by every request, job and service."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from civic.kernel.services import Service, ServiceContext
from civic.kernel.settings import KernelSettings


@dataclass
class Kernel:
    """Settings, database and loaded services of one running platform."""

    settings: KernelSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    services: list[Service] = field(default_factory=list)
    contexts: dict[str, ServiceContext] = field(default_factory=dict)

    @property
    def secret(self) -> str:
        """The signing secret."""
        return self.settings.security.secret_key.get_secret_value()
