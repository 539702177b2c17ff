"""What changes an incident: keyword-only functions that never commit and publish their events."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel import audit
from civic.kernel.access import get_owned, scoped
from civic.kernel.audit import AuditAction, AuditContext
from civic.kernel.bus import publish
from civic.kernel.citizen_links import issue_citizen_link
from civic.kernel.db import utcnow
from civic.kernel.identity import Principal, Role
from civic.kernel.incidents.events import (
    IncidentClosed,
    IncidentCreated,
    IncidentDispatched,
    IncidentUpdated,
)
from civic.kernel.incidents.models import (
    STATUS_ORDER,
    Incident,
    IncidentCounter,
    IncidentMedia,
    IncidentNote,
    IncidentStatus,
    IncidentStatusEntry,
    IncidentType,
    IncidentUnit,
    UnitStatus,
)

SERVICE = "incidents"
KST = ZoneInfo("Asia/Seoul")
READERS = (Role.DISPATCHER, Role.OPERATOR, Role.CREW)
WRITERS = (Role.DISPATCHER, Role.OPERATOR)
REPORTER_READERS = (Role.DISPATCHER, Role.OPERATOR)
STATUS_LINK_PURPOSE = "incident-status"


class IncidentError(Exception):
    """An incident request that cannot be done; status is the HTTP status that fits."""

    def __init__(self, status: int, detail: str) -> None:
        """Describe why."""
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class IncidentInput:
    """What a new incident is made of."""

    type: IncidentType
    subtype: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    description: str = ""
    reporter_name: str | None = None
    reporter_phone: str | None = None

    def digest(self) -> str:
        """Return a fingerprint, to tell a retried request from a different one."""
        fields = {k: getattr(self, k) for k in self.__slots__}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


async def _next_number(session: AsyncSession, organisation_id: str, now: datetime) -> str:
    year = now.astimezone(KST).year
    dialect = session.get_bind().dialect.name
    insert = postgres_insert if dialect == "postgresql" else sqlite_insert
    # One atomic upsert: two dispatchers creating at once never get the same number.
    statement = (
        insert(IncidentCounter)
        .values(organisation_id=organisation_id, year=year, last=1)
        .on_conflict_do_update(
            index_elements=["organisation_id", "year"], set_={"last": IncidentCounter.last + 1}
        )
        .returning(IncidentCounter.last)
    )
    last = (await session.execute(statement)).scalar_one()
    return f"{year}-{last:06d}"


async def _by_key(session: AsyncSession, organisation_id: str, key: str) -> Incident | None:
    return await session.scalar(
        select(Incident).where(
            Incident.organisation_id == organisation_id, Incident.idempotency_key == key
        )
    )


def _replayed(existing: Incident, given: IncidentInput) -> Incident:
    if existing.request_digest != given.digest():
        raise IncidentError(
            409, "같은 Idempotency-Key로 다른 내용의 신고가 이미 접수되었습니다 (key reused)."
        )
    return existing


async def create_incident(
    session: AsyncSession,
    *,
    principal: Principal,
    given: IncidentInput,
    idempotency_key: str | None = None,
    context: AuditContext | None = None,
) -> tuple[Incident, bool]:
    """Receive an incident; return it and whether it is new (False: a retried request)."""
    if idempotency_key is not None:
        existing = await _by_key(session, principal.organisation_id, idempotency_key)
        if existing is not None:
            return _replayed(existing, given), False
    now = utcnow()
    try:
        # A savepoint: a concurrent request with the same key loses here, not the transaction.
        async with session.begin_nested():
            incident = Incident(
                organisation_id=principal.organisation_id,
                number=await _next_number(session, principal.organisation_id, now),
                type=given.type.value,
                subtype=given.subtype,
                status=IncidentStatus.RECEIVED.value,
                latitude=given.latitude,
                longitude=given.longitude,
                address=given.address,
                description=given.description,
                reporter_name=given.reporter_name,
                reporter_phone=given.reporter_phone,
                idempotency_key=idempotency_key,
                request_digest=given.digest(),
                created_by=principal.name,
                created_at=now,
                updated_at=now,
                timeline=[
                    IncidentStatusEntry(
                        status=IncidentStatus.RECEIVED.value, at=now, actor=principal.name
                    )
                ],
                units=[],
                notes=[],
                media=[],
            )
            session.add(incident)
            await session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        existing = await _by_key(session, principal.organisation_id, idempotency_key)
        if existing is None:
            raise
        return _replayed(existing, given), False
    await publish(session, IncidentCreated.of(incident, occurred_at=incident.created_at))
    await _audit(
        session, principal, AuditAction.CREATE, incident, {"number": incident.number}, context
    )
    return incident, True


async def _audit(
    session: AsyncSession,
    principal: Principal,
    action: AuditAction,
    incident: Incident,
    detail: dict[str, Any],
    context: AuditContext | None,
) -> None:
    await audit.record(
        session,
        principal=principal,
        action=action,
        subject_type="incident",
        subject_id=incident.id,
        detail=detail,
        context=context,
    )


async def get_incident(
    session: AsyncSession, *, principal: Principal, incident_id: str
) -> Incident:
    """Return an incident of the principal's organisation, or raise a 404 IncidentError."""
    incident = await get_owned(session, Incident, incident_id, principal=principal)
    if incident is None:
        raise IncidentError(404, f"'{incident_id}' 사건이 없습니다 (no such incident).")
    return incident


async def list_incidents(
    session: AsyncSession,
    *,
    principal: Principal,
    statuses: list[IncidentStatus] | None = None,
    type: IncidentType | None = None,
    open_only: bool = False,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Incident], int]:
    """Return a page of the organisation's incidents, newest first, and how many match."""
    statement = scoped(select(Incident), Incident.organisation_id, principal)
    if statuses:
        statement = statement.where(Incident.status.in_([s.value for s in statuses]))
    if type is not None:
        statement = statement.where(Incident.type == type.value)
    if open_only:
        statement = statement.where(Incident.status != IncidentStatus.CLOSED.value)
    if since is not None:
        statement = statement.where(Incident.created_at >= since)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(Incident.created_at.desc(), Incident.id).limit(limit).offset(offset)
    )
    return list(rows.all()), int(total or 0)


async def read_reporter(
    session: AsyncSession,
    *,
    principal: Principal,
    incident_id: str,
    context: AuditContext | None = None,
) -> tuple[str | None, str | None]:
    """Return the reporter's name and phone to a dispatcher or operator, and audit the read."""
    if principal.link is not None or not principal.has_role(SERVICE, *REPORTER_READERS):
        raise IncidentError(403, "신고자 연락처는 상황요원(dispatcher, operator)만 볼 수 있습니다.")
    incident = await get_incident(session, principal=principal, incident_id=incident_id)
    await audit.record_personal_read(
        session,
        principal=principal,
        subject_type="incident",
        subject_id=incident.id,
        fields=["reporter_name", "reporter_phone"],
        context=context,
    )
    return incident.reporter_name, incident.reporter_phone


def _move(incident: Incident, status: IncidentStatus, actor: str, note: str | None) -> None:
    now = utcnow()
    incident.status = status.value
    incident.updated_at = now
    if status is IncidentStatus.CLOSED:
        incident.closed_at = now
    incident.timeline.append(
        IncidentStatusEntry(status=status.value, at=now, actor=actor, note=note)
    )


async def change_status(
    session: AsyncSession,
    *,
    principal: Principal,
    incident_id: str,
    status: IncidentStatus,
    note: str | None = None,
    context: AuditContext | None = None,
) -> Incident:
    """Move an incident forward (received → dispatched → on_scene → resolved → closed)."""
    incident = await get_incident(session, principal=principal, incident_id=incident_id)
    current = IncidentStatus(incident.status)
    if STATUS_ORDER.index(status) <= STATUS_ORDER.index(current):
        raise IncidentError(
            409,
            f"상태는 앞으로만 바뀝니다: '{current.value}' → '{status.value}' 불가 (forward only).",
        )
    _move(incident, status, principal.name, note)
    await session.flush()
    if status is IncidentStatus.CLOSED:
        await publish(session, IncidentClosed.of(incident))
    elif status is IncidentStatus.DISPATCHED:
        await publish(session, IncidentDispatched.of(incident))
    else:
        await publish(session, IncidentUpdated.of(incident, change="status"))
    await _audit(
        session, principal, AuditAction.UPDATE, incident, {"status": status.value}, context
    )
    return incident


def _refuse_closed(incident: Incident) -> None:
    if incident.status == IncidentStatus.CLOSED.value:
        raise IncidentError(409, f"종결된 사건({incident.number})은 바꿀 수 없습니다 (closed).")


async def update_details(
    session: AsyncSession,
    *,
    principal: Principal,
    incident_id: str,
    changes: dict[str, Any],
    context: AuditContext | None = None,
) -> Incident:
    """Correct type, subtype, place or description of an open incident."""
    allowed = {"type", "subtype", "latitude", "longitude", "address", "description"}
    if unknown := set(changes) - allowed:
        raise IncidentError(422, f"바꿀 수 없는 항목입니다: {', '.join(sorted(unknown))}.")
    incident = await get_incident(session, principal=principal, incident_id=incident_id)
    _refuse_closed(incident)
    for name, value in changes.items():
        setattr(incident, name, value.value if isinstance(value, IncidentType) else value)
    incident.updated_at = utcnow()
    await session.flush()
    await publish(session, IncidentUpdated.of(incident, change="details"))
    await _audit(
        session, principal, AuditAction.UPDATE, incident, {"fields": sorted(changes)}, context
    )
    return incident


async def add_note(
    session: AsyncSession,
    *,
    principal: Principal,
    incident_id: str,
    text: str,
    context: AuditContext | None = None,
) -> IncidentNote:
    """Add a note to an incident."""
    incident = await get_incident(session, principal=principal, incident_id=incident_id)
    note = IncidentNote(incident_id=incident.id, author=principal.name, text=text)
    incident.notes.append(note)
    incident.updated_at = utcnow()
    await session.flush()
    await publish(session, IncidentUpdated.of(incident, change="note"))
    await _audit(session, principal, AuditAction.UPDATE, incident, {"note": note.id}, context)
    return note


async def link_unit(
    session: AsyncSession,
    *,
    principal: Principal,
    incident_id: str,
    unit_id: str,
    name: str,
    status: UnitStatus = UnitStatus.ASSIGNED,
    context: AuditContext | None = None,
) -> Incident:
    """Send a unit to an incident or update its status there; the first unit dispatches it."""
    incident = await get_incident(session, principal=principal, incident_id=incident_id)
    _refuse_closed(incident)
    unit = next((u for u in incident.units if u.unit_id == unit_id), None)
    now = utcnow()
    if unit is None:
        unit = IncidentUnit(unit_id=unit_id, name=name, status=status.value, updated_at=now)
        incident.units.append(unit)
        if incident.status == IncidentStatus.RECEIVED.value:
            _move(incident, IncidentStatus.DISPATCHED, principal.name, name)
        await session.flush()
        await publish(session, IncidentDispatched.of(incident, unit_id=unit_id, unit_name=name))
    else:
        unit.name, unit.status, unit.updated_at = name, status.value, now
        await session.flush()
        await publish(session, IncidentUpdated.of(incident, change="unit"))
    incident.updated_at = now
    detail = {"unit_id": unit_id, "unit_status": status.value}
    await _audit(session, principal, AuditAction.UPDATE, incident, detail, context)
    return incident


async def attach_media(
    session: AsyncSession,
    *,
    principal: Principal,
    incident_id: str,
    media_id: str,
    caption: str | None = None,
    context: AuditContext | None = None,
) -> Incident:
    """Link a media item (by the media module's id) to an incident, once."""
    incident = await get_incident(session, principal=principal, incident_id=incident_id)
    if all(m.media_id != media_id for m in incident.media):
        incident.media.append(
            IncidentMedia(media_id=media_id, caption=caption, added_by=principal.name)
        )
        incident.updated_at = utcnow()
        await session.flush()
        await publish(session, IncidentUpdated.of(incident, change="media"))
        await _audit(session, principal, AuditAction.UPDATE, incident, {"media": media_id}, context)
    return incident


async def issue_status_link(
    session: AsyncSession,
    *,
    principal: Principal,
    incident_id: str,
    secret: str,
    valid_for: timedelta,
) -> str:
    """Return a signed link token that lets a citizen follow this incident's status only."""
    incident = await get_incident(session, principal=principal, incident_id=incident_id)
    return await issue_citizen_link(
        session,
        secret=secret,
        organisation_id=incident.organisation_id,
        purpose=STATUS_LINK_PURPOSE,
        subject_type="incident",
        subject_id=incident.id,
        valid_for=valid_for,
    )
