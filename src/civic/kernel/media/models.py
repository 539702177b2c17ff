"""Tables: who uploaded which file, and the hash-chained evidence records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from civic.kernel.db import Base, IdMixin, TimestampMixin, UtcDateTime, utcnow

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class MediaItem(IdMixin, TimestampMixin, Base):
    """One organisation's copy of an uploaded file; the bytes are stored once per hash."""

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("organisation_id", "sha256"),)

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    original_filename: Mapped[str | None] = mapped_column(String(255))
    uploaded_by: Mapped[str] = mapped_column(String(120))
    uploaded_by_user_id: Mapped[str | None] = mapped_column(String(32))
    link_id: Mapped[str | None] = mapped_column(String(32))
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64))


class EvidenceRecord(Base):
    """One link of the evidence chain; rows are never updated or deleted (the database refuses).

    record_hash is the SHA-256 of the canonical JSON of every other column, previous_hash
    included, so changing any record breaks its own hash and every link after it.
    """

    __tablename__ = "evidence_records"
    __table_args__ = (Index("ix_evidence_records_case", "case_type", "case_id"),)

    seq: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=False)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    case_type: Mapped[str] = mapped_column(String(60))
    case_id: Mapped[str] = mapped_column(String(64))
    media: Mapped[list[str]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(120))
    # Unique: two records can never claim the same predecessor, so the chain cannot fork.
    previous_hash: Mapped[str] = mapped_column(String(64), unique=True)
    record_hash: Mapped[str] = mapped_column(String(64), unique=True)


class EvidenceMedia(Base):
    """A file that an evidence record refers to; such files cannot be deleted."""

    __tablename__ = "evidence_media"

    seq: Mapped[int] = mapped_column(
        _BIG_ID, ForeignKey("evidence_records.seq"), primary_key=True, autoincrement=False
    )
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
