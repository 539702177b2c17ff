"""Tables of the device registry, telemetry, rollups, alarm rules, alarms and commands."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from civic.kernel.db import Base, IdMixin, TimestampMixin, UtcDateTime, utcnow

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class DeviceStatus(StrEnum):
    """Whether a device's messages are accepted."""

    ACTIVE = "active"
    DISABLED = "disabled"


class AlarmStatus(StrEnum):
    """An alarm is active until its condition ends."""

    ACTIVE = "active"
    CLEARED = "cleared"


class CommandStatus(StrEnum):
    """Where a command to a device is."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


class Device(IdMixin, TimestampMixin, Base):
    """A device in the field that belongs to one organisation."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    external_id: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    configuration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    firmware: Mapped[str | None] = mapped_column(String(60))
    credential_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20), default=DeviceStatus.ACTIVE.value)


class TelemetrySample(Base):
    """One accepted telemetry message, as validated for its kind (the raw series)."""

    __tablename__ = "device_telemetry"
    __table_args__ = (
        UniqueConstraint("device_id", "message_id"),
        Index("ix_device_telemetry_device_id_sampled_at", "device_id", "sampled_at"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(64))
    sampled_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class TelemetryRollup(Base):
    """Count, sum, minimum and maximum of one metric of one device in one time bucket."""

    __tablename__ = "device_rollups"
    __table_args__ = (UniqueConstraint("device_id", "metric", "resolution", "bucket"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(60))
    resolution: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[datetime] = mapped_column(UtcDateTime())
    count: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)
    minimum: Mapped[float] = mapped_column(Float)
    maximum: Mapped[float] = mapped_column(Float)


class AlarmRule(IdMixin, TimestampMixin, Base):
    """When to raise an alarm: a threshold (held N seconds or N times in a row) or silence."""

    __tablename__ = "device_alarm_rules"

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str | None] = mapped_column(String(40))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    metric: Mapped[str | None] = mapped_column(String(60))
    operator: Mapped[str | None] = mapped_column(String(2))
    threshold: Mapped[float | None] = mapped_column(Float)
    for_seconds: Mapped[float] = mapped_column(Float, default=0)
    times_in_row: Mapped[int] = mapped_column(Integer, default=1)
    silent_seconds: Mapped[float | None] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(20), default="warning")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Alarm(IdMixin, Base):
    """A raised alarm of one device under one rule; acknowledged by a person, cleared by data."""

    __tablename__ = "device_alarms"
    __table_args__ = (Index("ix_device_alarms_status_raised_at", "status", "raised_at"),)

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("device_alarm_rules.id", ondelete="CASCADE"))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=AlarmStatus.ACTIVE.value)
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)


class DeviceCommand(IdMixin, TimestampMixin, Base):
    """A command sent to a device over MQTT, with its delivery status."""

    __tablename__ = "device_commands"

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=CommandStatus.QUEUED.value, index=True)
    requested_by: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
