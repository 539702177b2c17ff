"""Kinds of device: what telemetry each sends (validated per kind) and what commands it takes.

The kernel ships a few generic kinds; services register their own (hydrant sensors, pump
controllers, LED boards) with `register_kind` when they load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_KINDS: dict[str, DeviceKind] = {}
_NUMERIC = (float, int, bool)


class Telemetry(BaseModel):
    """Base of every kind's telemetry model: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArguments(BaseModel):
    """A command without arguments."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class DeviceKind:
    """A kind of device: its telemetry model and its commands (name → arguments model)."""

    name: str
    title: str
    telemetry: type[BaseModel]
    commands: dict[str, type[BaseModel]] = field(default_factory=dict)

    def metrics_of(self, data: dict[str, Any]) -> dict[str, float]:
        """Return the numeric metrics of validated telemetry (booleans as 0/1, others left out)."""
        return {name: float(value) for name, value in data.items() if type(value) in _NUMERIC}


def register_kind(kind: DeviceKind) -> DeviceKind:
    """Register a kind of device; registering the same name twice with another model fails."""
    existing = _KINDS.get(kind.name)
    if existing is not None and existing != kind:
        raise ValueError(f"device kind {kind.name!r} is registered already")
    if not kind.name.replace("_", "").replace("-", "").isalnum() or len(kind.name) > 40:
        raise ValueError(f"device kind names are short words, not {kind.name!r}")
    _KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> DeviceKind | None:
    """Return the registered kind called name, if any."""
    return _KINDS.get(name)


def registered_kinds() -> list[DeviceKind]:
    """Return every registered kind, by name."""
    return [_KINDS[name] for name in sorted(_KINDS)]


class GenericTelemetry(Telemetry):
    """Telemetry of a generic sensor: a few common measurements, all optional."""

    temperature: float | None = Field(default=None, ge=-60, le=150, description="°C")
    humidity: float | None = Field(default=None, ge=0, le=100, description="%RH")
    pressure: float | None = Field(default=None, ge=0, le=10_000, description="kPa")
    battery: float | None = Field(default=None, ge=0, le=100, description="%")
    level: float | None = Field(default=None, description="a level in the device's own unit")


class SwitchTelemetry(Telemetry):
    """Telemetry of something that is switched on or off (a heater, a pump, a light)."""

    on: bool
    power_w: float | None = Field(default=None, ge=0, description="W")
    battery: float | None = Field(default=None, ge=0, le=100, description="%")


class SwitchCommand(BaseModel):
    """Turn a switch on or off."""

    model_config = ConfigDict(extra="forbid")

    on: bool


class ConfigureCommand(BaseModel):
    """Change configuration values on the device."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] = Field(default_factory=dict)


SENSOR = register_kind(
    DeviceKind(
        name="sensor",
        title="범용 센서",
        telemetry=GenericTelemetry,
        commands={"ping": NoArguments, "configure": ConfigureCommand},
    )
)
SWITCH = register_kind(
    DeviceKind(
        name="switch",
        title="원격 스위치",
        telemetry=SwitchTelemetry,
        commands={"ping": NoArguments, "switch": SwitchCommand, "configure": ConfigureCommand},
    )
)
