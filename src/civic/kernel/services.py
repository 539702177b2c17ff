"""The Service manifest, and the registry that loads services from their entry point."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from pydantic import BaseModel, ValidationError

from civic.kernel.identity import Principal, Role

if TYPE_CHECKING:
    from civic.kernel.runtime import Kernel

ENTRY_POINT_GROUP = "civic.services"
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class ServiceError(Exception):
    """A service could not be loaded or started; the message names it and the cause."""


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """What a running service receives: the kernel and its own validated settings."""

    kernel: Kernel
    settings: BaseModel | None


Hook = Callable[[ServiceContext], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class Service:
    """One public service: its routes, pages, roles, settings and life-cycle hooks."""

    name: str
    title: str
    description: str = ""
    api: APIRouter | None = None
    pages: APIRouter | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    settings_model: type[BaseModel] | None = None
    setup: Hook | None = None
    teardown: Hook | None = None
    templates_dir: Path | None = None
    static_dir: Path | None = None

    def __post_init__(self) -> None:
        """Refuse names that cannot be a URL segment and a table prefix."""
        if not _NAME.match(self.name):
            raise ServiceError(f"service name {self.name!r} must match {_NAME.pattern}")

    def visible_to(self, principal: Principal | None) -> bool:
        """Whether principal may open this service (any role in it, or one of `roles`)."""
        if principal is None:
            return False
        if not self.roles:
            return any(s in (self.name, "*") for s in principal.services())
        return principal.has_role(self.name, *self.roles)

    def load_settings(self, sections: dict[str, dict[str, Any]]) -> BaseModel | None:
        """Validate this service's section of the settings with its own model."""
        if self.settings_model is None:
            return None
        try:
            return self.settings_model.model_validate(sections.get(self.name, {}))
        except ValidationError as exc:
            raise ServiceError(f"서비스 '{self.name}' 설정 오류 (settings): {exc}") from exc


def discover_services() -> list[Service]:
    """Load every service registered under the `civic.services` entry point."""
    found: list[Service] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            service = point.load()
        except Exception as exc:
            raise ServiceError(f"서비스 '{point.name}' 불러오기 실패 (import): {exc!r}") from exc
        if not isinstance(service, Service):
            raise ServiceError(f"entry point {point.name!r} is not a civic Service")
        found.append(service)
    return found


def check_unique(services: Iterable[Service]) -> list[Service]:
    """Refuse two services with one name."""
    seen: dict[str, Service] = {}
    for service in services:
        if service.name in seen:
            raise ServiceError(f"two services are named {service.name!r}")
        seen[service.name] = service
    return list(seen.values())
