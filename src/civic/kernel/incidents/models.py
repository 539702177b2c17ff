"""Tables of the shared incident: the incident, its status timeline, units, notes and media."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from civic.kernel.db import Base, IdMixin, TimestampMixin, UtcDateTime, utcnow

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class IncidentType(StrEnum):
    """What kind of emergency."""

    FIRE = "fire"
    RESCUE = "rescue"
    EMS = "ems"
    OTHER = "other"


class IncidentStatus(StrEnum):
    """Where an incident stands; it only moves forward, in this order."""

    RECEIVED = "received"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    CLOSED = "closed"


STATUS_ORDER = list(IncidentStatus)


class UnitStatus(StrEnum):
    """Where a linked unit stands on this incident."""

    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RELEASED = "released"


class Incident(IdMixin, TimestampMixin, Base):
    """One emergency of one organisation; services link their own rows to its id."""

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("organisation_id", "number", name="uq_incidents_number"),
        UniqueConstraint("organisation_id", "idempotency_key", name="uq_incidents_idempotency_key"),
    )

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    number: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(20))
    subtype: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), index=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    # Personal data: read only through incidents.service.read_reporter (role-checked, audited).
    reporter_name: Mapped[str | None] = mapped_column(String(100))
    reporter_phone: Mapped[str | None] = mapped_column(String(40))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    request_digest: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    timeline: Mapped[list[IncidentStatusEntry]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="IncidentStatusEntry.id"
    )
    units: Mapped[list[IncidentUnit]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="IncidentUnit.created_at"
    )
    notes: Mapped[list[IncidentNote]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="IncidentNote.created_at"
    )
    media: Mapped[list[IncidentMedia]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="IncidentMedia.created_at"
    )


class IncidentStatusEntry(Base):
    """One step of an incident's status timeline."""

    __tablename__ = "incident_timeline"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(500))


class IncidentUnit(IdMixin, TimestampMixin, Base):
    """A unit (engine, ambulance, team) sent to an incident, and its status there."""

    __tablename__ = "incident_units"
    __table_args__ = (UniqueConstraint("incident_id", "unit_id", name="uq_incident_units_unit"),)

    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class IncidentNote(IdMixin, TimestampMixin, Base):
    """A free-text note a person added to an incident."""

    __tablename__ = "incident_notes"

    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text)


class IncidentMedia(IdMixin, TimestampMixin, Base):
    """A reference to a photo, video or recording kept by the media module."""

    __tablename__ = "incident_media"
    __table_args__ = (UniqueConstraint("incident_id", "media_id", name="uq_incident_media_media"),)

    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    media_id: Mapped[str] = mapped_column(String(64))
    caption: Mapped[str | None] = mapped_column(String(200))
    added_by: Mapped[str] = mapped_column(String(120))


class IncidentCounter(Base):
    """The last incident number given by an organisation in a year (2026-000123)."""

    __tablename__ = "incident_counters"

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)
