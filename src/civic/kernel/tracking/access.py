"""Reading positions: every read checks the role, and reads of people's positions are audited."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.audit import AuditContext, record_personal_read
from civic.kernel.geo.points import Point
from civic.kernel.identity import Principal
from civic.kernel.tracking import store
from civic.kernel.tracking.live import LiveSubject
from civic.kernel.tracking.part import SERVICE, WATCH_ROLES, Tracker
from civic.kernel.tracking.schemas import HistoryRead, NearbyRead, PositionRead, SubjectRead

POSITION_FIELDS = ["lat", "lon", "time"]


class TrackingDenied(PermissionError):
    """The principal may not see positions."""


def may_watch(principal: Principal) -> bool:
    """Whether principal may see tracked positions (dispatcher, operator or admin)."""
    return principal.has_role(SERVICE, *WATCH_ROLES)


def _check(principal: Principal) -> None:
    if not may_watch(principal):
        roles = ", ".join(role.value for role in WATCH_ROLES)
        raise TrackingDenied(f"'{SERVICE}'에서 다음 역할이 필요합니다: {roles}.")


async def _audit(
    session: AsyncSession,
    principal: Principal,
    subjects: Iterable[LiveSubject],
    fields: list[str],
    context: AuditContext | None,
) -> None:
    for live in subjects:
        if live.personal:
            await record_personal_read(
                session,
                principal=principal,
                subject_type=f"tracking.{live.kind}",
                subject_id=live.external_id,
                fields=fields,
                context=context,
            )


def _last(live: LiveSubject) -> PositionRead | None:
    if live.lat is None or live.lon is None or live.device_time is None:
        return None
    return PositionRead(
        lat=live.lat,
        lon=live.lon,
        accuracy_m=live.accuracy_m,
        speed_mps=live.speed_mps,
        heading_deg=live.heading_deg,
        time=live.device_time,
        received_at=live.received_at or live.device_time,
        source=live.source or "",
    )


def subject_read(live: LiveSubject) -> SubjectRead:
    """Describe a subject and its last position."""
    return SubjectRead(
        kind=live.kind,
        subject_id=live.external_id,
        display_name=live.display_name,
        personal=live.personal,
        signal_lost=live.lost_at is not None,
        last=_last(live),
    )


def _nearby(live: LiveSubject, distance_m: float) -> NearbyRead:
    return NearbyRead(**subject_read(live).model_dump(), distance_m=round(distance_m, 1))


async def read_subjects(
    session: AsyncSession,
    tracker: Tracker,
    *,
    principal: Principal,
    kinds: Iterable[str],
    context: AuditContext | None = None,
) -> list[SubjectRead]:
    """Return the principal's organisation's subjects of some kinds with their last positions."""
    _check(principal)
    found = sorted(
        tracker.state.of(principal.organisation_id, kinds),
        key=lambda live: (live.kind, live.external_id),
    )
    await _audit(session, principal, found, POSITION_FIELDS, context)
    return [subject_read(live) for live in found]


async def read_subject(
    session: AsyncSession,
    tracker: Tracker,
    *,
    principal: Principal,
    kind: str,
    subject_id: str,
    context: AuditContext | None = None,
) -> SubjectRead | None:
    """Return one subject of the principal's organisation and its last position."""
    _check(principal)
    live = tracker.state.subject(principal.organisation_id, kind, subject_id)
    if live is None:
        return None
    await _audit(session, principal, [live], POSITION_FIELDS, context)
    return subject_read(live)


async def read_history(
    session: AsyncSession,
    tracker: Tracker,
    *,
    principal: Principal,
    kind: str,
    subject_id: str,
    since: datetime,
    until: datetime,
    limit: int,
    context: AuditContext | None = None,
) -> HistoryRead | None:
    """Return where a subject of the organisation was in [since, until) (stored positions)."""
    _check(principal)
    live = tracker.state.subject(principal.organisation_id, kind, subject_id)
    if live is None:
        return None
    rows = await store.history(
        session, subject_id=live.id, since=since, until=until, limit=limit + 1
    )
    await _audit(session, principal, [live], ["history"], context)
    return HistoryRead(
        kind=live.kind,
        subject_id=live.external_id,
        truncated=len(rows) > limit,
        positions=[
            PositionRead(
                lat=row.lat,
                lon=row.lon,
                accuracy_m=row.accuracy_m,
                speed_mps=row.speed_mps,
                heading_deg=row.heading_deg,
                time=row.device_time,
                received_at=row.received_at,
                source=row.source,
            )
            for row in rows[:limit]
        ],
    )


async def find_within(
    session: AsyncSession,
    tracker: Tracker,
    *,
    principal: Principal,
    kinds: Iterable[str],
    point: Point,
    radius_m: float,
    context: AuditContext | None = None,
) -> list[NearbyRead]:
    """Return the organisation's subjects with a signal within radius_m of point, nearest first."""
    _check(principal)
    found = tracker.state.within(principal.organisation_id, kinds, point, radius_m)
    await _audit(session, principal, (live for live, _ in found), POSITION_FIELDS, context)
    return [_nearby(live, distance) for live, distance in found]


async def find_nearest(
    session: AsyncSession,
    tracker: Tracker,
    *,
    principal: Principal,
    kinds: Iterable[str],
    point: Point,
    k: int,
    context: AuditContext | None = None,
) -> list[NearbyRead]:
    """Return the organisation's k subjects (with a signal) nearest to point."""
    _check(principal)
    found = tracker.state.nearest(principal.organisation_id, kinds, point, k)
    await _audit(session, principal, (live for live, _ in found), POSITION_FIELDS, context)
    return [_nearby(live, distance) for live, distance in found]
