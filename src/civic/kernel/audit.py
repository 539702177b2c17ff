"""Append-only log of every read of personal data and every change a person makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from civic.kernel.db import Base, UtcDateTime, utcnow
from civic.kernel.identity import Principal

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class AuditAction(StrEnum):
    """What a person did."""

    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    EXPORT = "export"


class AuditEntry(Base):
    """One audited act; rows are never updated or deleted (the database refuses it)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    actor_user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(120), index=True)
    via: Mapped[str] = mapped_column(String(20))
    organisation_id: Mapped[str | None] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(20))
    subject_type: Mapped[str] = mapped_column(String(60), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Where an act came from: the request id and the client address."""

    request_id: str | None = None
    ip: str | None = None


async def record(
    session: AsyncSession,
    *,
    principal: Principal | None,
    action: AuditAction,
    subject_type: str,
    subject_id: str | None,
    detail: dict[str, Any] | None = None,
    context: AuditContext | None = None,
    actor: str | None = None,
    organisation_id: str | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction, so it stands or falls with the act."""
    context = context or AuditContext()
    entry = AuditEntry(
        actor_user_id=principal.user_id if principal else None,
        actor=actor or (principal.name if principal else "anonymous"),
        via=principal.via if principal else "anonymous",
        organisation_id=principal.organisation_id if principal else organisation_id,
        action=action.value,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail or {},
        request_id=context.request_id,
        ip=context.ip,
    )
    session.add(entry)
    await session.flush()
    return entry


async def record_personal_read(
    session: AsyncSession,
    *,
    principal: Principal,
    subject_type: str,
    subject_id: str,
    fields: list[str],
    context: AuditContext | None = None,
) -> None:
    """Note that principal read personal fields of one record."""
    await record(
        session,
        principal=principal,
        action=AuditAction.READ,
        subject_type=subject_type,
        subject_id=subject_id,
        detail={"fields": sorted(fields)},
        context=context,
    )


async def search(
    session: AsyncSession,
    *,
    organisation_id: str | None,
    actor: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[AuditEntry]:
    """Find entries, newest first, by actor name, subject (type or type:id) and time."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if organisation_id is not None:
        stmt = stmt.where(AuditEntry.organisation_id == organisation_id)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if subject:
        subject_type, _, subject_id = subject.partition(":")
        stmt = stmt.where(AuditEntry.subject_type == subject_type)
        if subject_id:
            stmt = stmt.where(AuditEntry.subject_id == subject_id)
    if since:
        stmt = stmt.where(AuditEntry.at >= since)
    if until:
        stmt = stmt.where(AuditEntry.at < until)
    return list((await session.scalars(stmt)).all())
