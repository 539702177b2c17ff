"""Tables of tracking: the things that move, and the history of where they were."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from civic.kernel.db import Base, TimestampMixin, UtcDateTime

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class TrackedKind(StrEnum):
    """What kind of thing reports its position."""

    FIRE_UNIT = "fire_unit"
    AMBULANCE = "ambulance"
    VEHICLE = "vehicle"
    DRONE = "drone"
    COLLABORATOR = "collaborator"
    WATCH = "watch"
    ANKLE_DEVICE = "ankle_device"


# Where a person is counts as personal data; where a fire engine is does not.
PERSONAL_KINDS = frozenset({TrackedKind.COLLABORATOR, TrackedKind.WATCH, TrackedKind.ANKLE_DEVICE})


def is_personal(kind: str) -> bool:
    """Whether positions of this kind are personal data (the position of a person)."""
    return kind in PERSONAL_KINDS


def subject_key(organisation_id: str, kind: str, external_id: str) -> str:
    """Return the stable row id of a subject, the same in every process that sees it."""
    # Deterministic ids let several ingesting processes create a subject without coordinating.
    raw = f"{organisation_id}\x00{kind}\x00{external_id}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class TrackedSubject(TimestampMixin, Base):
    """Something that moves and reports where it is, and where it was last."""

    __tablename__ = "tracking_subjects"
    __table_args__ = (UniqueConstraint("organisation_id", "kind", "external_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    external_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    last_lat: Mapped[float | None] = mapped_column(Float)
    last_lon: Mapped[float | None] = mapped_column(Float)
    last_accuracy_m: Mapped[float | None] = mapped_column(Float)
    last_speed_mps: Mapped[float | None] = mapped_column(Float)
    last_heading_deg: Mapped[float | None] = mapped_column(Float)
    last_device_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_source: Mapped[str | None] = mapped_column(String(20))
    signal_lost_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TrackedPosition(Base):
    """One reported position, kept for the retention period."""

    __tablename__ = "tracking_positions"
    __table_args__ = (
        Index("ix_tracking_positions_subject_time", "subject_id", "device_time"),
        Index("ix_tracking_positions_device_time", "device_time"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("tracking_subjects.id", ondelete="CASCADE"))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    device_time: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(20))
