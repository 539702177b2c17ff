"""Request and response models of the devices API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true or false")
    return value


# JSON numbers only: pydantic would otherwise read true as 1.
Number = Annotated[float, BeforeValidator(_no_bool)]
Whole = Annotated[int, BeforeValidator(_no_bool)]
Seconds = Annotated[float, Field(gt=0, le=86_400), BeforeValidator(_no_bool)]


def _registered_kinds(schema: dict[str, Any]) -> None:
    # Kinds are registered in code when services load, before the document is first built.
    from civic.kernel.devices.kinds import registered_kinds

    schema["enum"] = [kind.name for kind in registered_kinds()]


class Place(BaseModel):
    """Where a device stands (WGS84)."""

    model_config = ConfigDict(extra="forbid")

    lat: Number = Field(ge=-90, le=90)
    lon: Number = Field(ge=-180, le=180)


class DeviceCreate(BaseModel):
    """Register a device."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        max_length=40,
        description="A registered kind, e.g. sensor or switch.",
        json_schema_extra=_registered_kinds,
    )
    external_id: str = Field(
        pattern=r"^[A-Za-z0-9_.:\-]{1,80}$", description="The device's own id, used in topics."
    )
    name: str = Field(min_length=1, max_length=200)
    place: Place | None = None
    configuration: dict[str, Any] = Field(default_factory=dict)
    firmware: str | None = Field(default=None, max_length=60)


class DeviceRead(BaseModel):
    """A device, without its credential."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    organisation_id: str
    kind: str
    external_id: str
    name: str
    lat: float | None
    lon: float | None
    configuration: dict[str, Any]
    firmware: str | None
    last_seen_at: datetime | None
    status: str
    created_at: datetime


class DeviceCredential(BaseModel):
    """A device with its secret token and topics; the token is shown only this once."""

    device: DeviceRead
    token: str
    telemetry_topic: str
    command_topic: str


class KindRead(BaseModel):
    """A registered kind of device."""

    name: str
    title: str
    telemetry: dict[str, Any] = Field(description="JSON schema of data in telemetry messages.")
    commands: dict[str, dict[str, Any]] = Field(description="Command name → arguments schema.")


class TelemetryAccepted(BaseModel):
    """The answer to telemetry sent over HTTP."""

    stored: bool = Field(description="False when the message id had been stored before.")


class IngestStatsRead(BaseModel):
    """Counters of telemetry ingest since this process started."""

    accepted: int
    rejected: dict[str, int]
    rejected_total: int
    batches: int
    queued: int
    mqtt: dict[str, int]
    mqtt_url: str | None
    alarm_latency_p50_ms: float | None
    alarm_latency_p99_ms: float | None


class PointRead(BaseModel):
    """One point of a series."""

    at: datetime
    value: float
    minimum: float
    maximum: float
    count: int


class SeriesRead(BaseModel):
    """A device's metric over a time range."""

    device_id: str
    metric: str
    resolution: Literal["raw", "1m", "1h"]
    points: list[PointRead]


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: str | None = Field(default=None, max_length=40, description="Only devices of a kind.")
    device_id: str | None = Field(default=None, max_length=32, description="Only this device.")
    severity: Literal["info", "warning", "critical"] = "warning"


class ThresholdRuleCreate(_RuleBase):
    """Alarm when a metric crosses a threshold: at once, N times in a row, or held N seconds."""

    condition: Literal["threshold"]
    metric: str = Field(min_length=1, max_length=60)
    operator: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: Number
    for_seconds: Number = Field(default=0, ge=0, le=86_400, description="Condition held this long.")
    times_in_row: Whole = Field(default=1, ge=1, le=1000, description="Consecutive samples.")


class SilenceRuleCreate(_RuleBase):
    """Alarm when a device sends nothing for silent_seconds."""

    condition: Literal["silence"]
    silent_seconds: Number = Field(ge=1, le=30 * 86_400, description="No data this long.")


RuleCreate = Annotated[ThresholdRuleCreate | SilenceRuleCreate, Field(discriminator="condition")]


class RuleRead(BaseModel):
    """An alarm rule."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str | None
    device_id: str | None
    metric: str | None
    operator: str | None
    threshold: float | None
    for_seconds: float
    times_in_row: int
    silent_seconds: float | None
    severity: str
    enabled: bool


class AlarmRead(BaseModel):
    """An alarm."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    device_id: str
    rule_id: str
    severity: str
    status: str
    message: str
    value: float | None
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None
    escalation_level: int


class CommandCreate(BaseModel):
    """A command to a device."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=60)
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: Seconds | None = Field(
        default=None, description="Defaults to devices.command_timeout_seconds."
    )


class CommandAck(BaseModel):
    """A device's answer to a command, sent over HTTP."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=2000)


class CommandRead(BaseModel):
    """A command and where it is."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    device_id: str
    name: str
    arguments: dict[str, Any]
    status: str
    requested_by: str | None
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime
    result: dict[str, Any] | None
    error: str | None
