"""The running kernel: typed state shared by every request, job and service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from civic.kernel.services import Service, ServiceContext
from civic.kernel.settings import KernelSettings


class KernelPart(Protocol):
    """A long-running piece of the kernel (event relay, MQTT ingest, ...) started with the app."""

    name: str

    async def start(self, kernel: Kernel) -> None:
        """Start background work; return once it runs."""

    async def stop(self) -> None:
        """Stop background work and release resources."""


PartT = TypeVar("PartT")


@dataclass
class Kernel:
    """Settings, database and loaded services of one running platform."""

    settings: KernelSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    services: list[Service] = field(default_factory=list)
    contexts: dict[str, ServiceContext] = field(default_factory=dict)
    parts: list[KernelPart] = field(default_factory=list)

    def part(self, name: str, kind: type[PartT]) -> PartT:
        """Return the running part called name, checked to be of kind."""
        for part in self.parts:
            if part.name == name and isinstance(part, kind):
                return part
        raise LookupError(f"kernel part {name!r} ({kind.__name__}) is not running")

    @property
    def secret(self) -> str:
        """The signing secret."""
        return self.settings.security.secret_key.get_secret_value()
