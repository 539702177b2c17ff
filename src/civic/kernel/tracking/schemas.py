"""What devices send and what the tracking API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from civic.kernel.tracking.models import TrackedKind

MAX_BATCH = 1000
SUBJECT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
SubjectId = Annotated[
    str,
    Field(
        pattern=SUBJECT_ID_PATTERN,
        description="The device's own id: letters, digits, '.', '_', ':' or '-', at most 64.",
    ),
]


MAX_UNIX_TIME = 1e13


def _device_time(value: object) -> object:
    # Pydantic would also read digits in a string and any number as a time: say what we take.
    if isinstance(value, bool):
        raise ValueError("time must be an ISO 8601 text or a number, not true/false")
    if isinstance(value, int | float) and not 0 <= value <= MAX_UNIX_TIME:
        raise ValueError(f"a Unix time must be between 0 and {MAX_UNIX_TIME:g}")
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        raise ValueError("a Unix time is a JSON number, not text")
    return value


DeviceTime = Annotated[
    AwareDatetime,
    BeforeValidator(_device_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": 0, "maximum": MAX_UNIX_TIME},
            ]
        }
    ),
]


class PositionFix(BaseModel):
    """Where a subject is, as its device says (the MQTT payload)."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(
        ge=-90, le=90, allow_inf_nan=False, strict=True, description="WGS84 latitude."
    )
    lon: float = Field(
        ge=-180, le=180, allow_inf_nan=False, strict=True, description="WGS84 longitude."
    )
    accuracy_m: float | None = Field(
        default=None,
        ge=0,
        le=100_000,
        allow_inf_nan=False,
        strict=True,
        description="Accuracy radius (m).",
    )
    speed_mps: float | None = Field(
        default=None, ge=0, le=400, allow_inf_nan=False, strict=True, description="Speed (m/s)."
    )
    heading_deg: float | None = Field(
        default=None,
        ge=0,
        le=360,
        allow_inf_nan=False,
        strict=True,
        description="Heading, clockwise from N.",
    )
    time: DeviceTime | None = Field(
        default=None,
        description="When the device measured it: ISO 8601 with a time zone, or a Unix time in "
        "seconds (milliseconds above 2e10); absent: when it was received.",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Name to show on maps."
    )


class PositionReport(PositionFix):
    """One position of one subject (an item of an HTTP batch)."""

    kind: TrackedKind = Field(description="What the subject is.")
    subject_id: SubjectId


class PositionBatch(BaseModel):
    """Positions posted together; they are validated together."""

    model_config = ConfigDict(extra="forbid")

    positions: list[PositionReport] = Field(min_length=1, max_length=MAX_BATCH)


class Rejection(BaseModel):
    """A position that was not taken, and why."""

    index: int
    subject_id: str
    reason: str


class IngestResult(BaseModel):
    """What became of a batch of positions."""

    accepted: int = Field(description="Positions that moved their subject (newest so far).")
    history_only: int = Field(description="Older than the subject's last: kept in history only.")
    duplicates: int = Field(description="Same time and place as the last: ignored.")
    rejected: list[Rejection] = Field(default_factory=list)


class PositionRead(BaseModel):
    """A position in time."""

    lat: float
    lon: float
    accuracy_m: float | None
    speed_mps: float | None
    heading_deg: float | None
    time: datetime
    received_at: datetime
    source: str


class SubjectRead(BaseModel):
    """A tracked subject and where it was last."""

    kind: str
    subject_id: str
    display_name: str
    personal: bool
    signal_lost: bool
    last: PositionRead | None


class NearbyRead(SubjectRead):
    """A subject found near a place, with its distance."""

    distance_m: float


class HistoryRead(BaseModel):
    """Where a subject was over a time range, oldest first."""

    kind: str
    subject_id: str
    positions: list[PositionRead]
    truncated: bool


class TrackingStats(BaseModel):
    """Counters of this process's tracking since it started."""

    subjects: int = Field(description="Subjects known.")
    with_signal: int = Field(description="Subjects in the moving index (signal not lost).")
    pending: int = Field(description="Positions received and not yet stored.")
    stored: int = Field(description="Positions stored.")
    accepted: int
    history_only: int
    duplicates: int
    rejected: int
    malformed: int = Field(description="MQTT messages that could not be read.")
    history_dropped: int = Field(description="Positions dropped because storage fell behind.")
