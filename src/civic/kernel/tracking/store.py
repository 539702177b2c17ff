"""Storage of tracking: subjects, batches of history, lost-signal marks, retention purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.bus import publish
from civic.kernel.db import UtcDateTime
from civic.kernel.tracking.events import SignalLost
from civic.kernel.tracking.live import HISTORY_COLUMNS, LiveSubject, Pending
from civic.kernel.tracking.models import TrackedPosition, TrackedSubject

_subjects: Table = TrackedSubject.__table__  # type: ignore[assignment]
_positions: Table = TrackedPosition.__table__  # type: ignore[assignment]

# Only a newer position may overwrite the last one: several processes may ingest at once.
_MOVE = (
    update(_subjects)
    .where(
        _subjects.c.id == bindparam("b_id"),
        or_(
            _subjects.c.last_device_time.is_(None),
            _subjects.c.last_device_time <= bindparam("b_time", type_=UtcDateTime()),
        ),
    )
    .values(
        display_name=bindparam("b_name"),
        last_lat=bindparam("b_lat"),
        last_lon=bindparam("b_lon"),
        last_accuracy_m=bindparam("b_accuracy"),
        last_speed_mps=bindparam("b_speed"),
        last_heading_deg=bindparam("b_heading"),
        last_device_time=bindparam("b_time", type_=UtcDateTime()),
        last_received_at=bindparam("b_received", type_=UtcDateTime()),
        last_source=bindparam("b_source"),
        signal_lost_at=bindparam("b_lost", type_=UtcDateTime()),
    )
)


async def load_subjects(session: AsyncSession) -> Sequence[TrackedSubject]:
    """Return every subject with its last position."""
    return (await session.scalars(select(TrackedSubject))).all()


async def store(session: AsyncSession, pending: Pending) -> None:
    """Store new subjects, history rows, last positions and restored signals in one go."""
    if pending.new_subjects:
        dialect = session.get_bind().dialect.name
        make = postgres_insert if dialect == "postgresql" else sqlite_insert
        await session.execute(
            make(_subjects).on_conflict_do_nothing(),
            [
                {
                    "id": live.id,
                    "organisation_id": live.organisation_id,
                    "kind": live.kind,
                    "external_id": live.external_id,
                    "display_name": live.display_name,
                    "last_lat": live.lat,
                    "last_lon": live.lon,
                    "last_accuracy_m": live.accuracy_m,
                    "last_speed_mps": live.speed_mps,
                    "last_heading_deg": live.heading_deg,
                    "last_device_time": live.device_time,
                    "last_received_at": live.received_at,
                    "last_source": live.source,
                }
                for live in pending.new_subjects
            ],
        )
    if pending.history:
        await session.execute(
            insert(_positions),
            [dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in pending.history],
        )
    if pending.moved:
        await session.execute(_MOVE, [_last(live) for live in pending.moved])
    if pending.restored:
        # Cleared at once even when last positions wait: a restart must not think them lost.
        await session.execute(
            update(_subjects)
            .where(_subjects.c.id.in_([event.subject_id for event in pending.restored]))
            .values(signal_lost_at=None)
        )
    for event in pending.restored:
        await publish(session, event)


def _last(live: LiveSubject) -> dict[str, object]:
    return {
        "b_id": live.id,
        "b_name": live.display_name,
        "b_lat": live.lat,
        "b_lon": live.lon,
        "b_accuracy": live.accuracy_m,
        "b_speed": live.speed_mps,
        "b_heading": live.heading_deg,
        "b_time": live.device_time,
        "b_received": live.received_at,
        "b_source": live.source,
        "b_lost": live.lost_at,
    }


async def mark_lost(session: AsyncSession, events: Sequence[SignalLost], *, at: datetime) -> None:
    """Note lost signals on their subjects and publish the events."""
    await session.execute(
        update(_subjects)
        .where(_subjects.c.id.in_([event.subject_id for event in events]))
        .values(signal_lost_at=at)
    )
    for event in events:
        await publish(session, event)


async def purge(session: AsyncSession, *, before: datetime) -> int:
    """Delete positions measured before a time; return how many went."""
    result = await session.execute(delete(_positions).where(_positions.c.device_time < before))
    return int(getattr(result, "rowcount", 0) or 0)


async def history(
    session: AsyncSession, *, subject_id: str, since: datetime, until: datetime, limit: int
) -> list[TrackedPosition]:
    """Return positions of a subject measured in [since, until), oldest first."""
    rows = await session.scalars(
        select(TrackedPosition)
        .where(
            TrackedPosition.subject_id == subject_id,
            TrackedPosition.device_time >= since,
            TrackedPosition.device_time < until,
        )
        .order_by(TrackedPosition.device_time, TrackedPosition.id)
        .limit(limit)
    )
    return list(rows.all())
