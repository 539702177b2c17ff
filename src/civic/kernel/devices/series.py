"""Time series: raw samples stored in bulk, 1-minute and 1-hour rollups, queries, retention.

Rollups are summed in memory as batches are stored and merged into the table (count and sum
added, minimum and maximum kept) every few seconds inside a batch's transaction, so the table
sees a few hundred upserts a second instead of several per message. A crash loses at most that
interval of rollup contributions, never raw samples; `rebuild_rollups` recomputes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.devices.ingest import Sample
from civic.kernel.devices.models import TelemetryRollup, TelemetrySample

RESOLUTIONS = {"1m": 60, "1h": 3600}
_FLUSH_SECONDS = 5.0


def bucket_of(at: datetime, seconds: int) -> datetime:
    """Return the start of the bucket of width seconds that holds at."""
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


async def known_ids(session: AsyncSession, samples: list[Sample]) -> set[tuple[str, str]]:
    """Return the (device id, message id) pairs of samples that are stored already."""
    if not samples:
        return set()
    pairs = [(s.device.id, s.message_id) for s in samples]
    found: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), 400):
        chunk = pairs[start : start + 400]
        rows = await session.execute(
            select(TelemetrySample.device_id, TelemetrySample.message_id).where(
                tuple_(TelemetrySample.device_id, TelemetrySample.message_id).in_(chunk)
            )
        )
        found |= {(row[0], row[1]) for row in rows}
    return found


# One statement for the whole batch: the server unpacks the arrays, several times faster than
# a round of INSERTs per row (executemany) on PostgreSQL.
_UNNEST_INSERT = text(
    "INSERT INTO device_telemetry (device_id, message_id, sampled_at, received_at, data) "
    "SELECT * FROM unnest(CAST(:device_ids AS VARCHAR[]), CAST(:message_ids AS VARCHAR[]), "
    "CAST(:sampled AS TIMESTAMPTZ[]), CAST(:received AS TIMESTAMPTZ[]), CAST(:data AS JSON[])) "
    "ON CONFLICT (device_id, message_id) DO NOTHING"
)

_SQLITE_INSERT = text(
    "INSERT INTO device_telemetry (device_id, message_id, sampled_at, received_at, data) "
    "VALUES (:device_id, :message_id, :sampled, :received, :data) "
    "ON CONFLICT (device_id, message_id) DO NOTHING"
)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


async def store_samples(session: AsyncSession, samples: list[Sample]) -> None:
    """Insert raw samples in bulk; one already stored (another process had it) is skipped."""
    if not samples:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _UNNEST_INSERT,
            {
                "device_ids": [s.device.id for s in samples],
                "message_ids": [s.message_id for s in samples],
                "sampled": [s.sampled_at for s in samples],
                "received": [s.received_at for s in samples],
                "data": [orjson.dumps(s.data).decode() for s in samples],
            },
        )
        return
    # SQLite: values are formatted here as SQLAlchemy would store them (UTC text, JSON text),
    # which halves the cost per row against binding them through the column types.
    await session.execute(
        _SQLITE_INSERT,
        [
            {
                "device_id": s.device.id,
                "message_id": s.message_id,
                "sampled": s.sampled_at.astimezone(UTC).strftime(_SQLITE_TIME),
                "received": s.received_at.astimezone(UTC).strftime(_SQLITE_TIME),
                "data": orjson.dumps(s.data).decode(),
            }
            for s in samples
        ],
    )


@dataclass
class _Aggregate:
    count: int
    total: float
    minimum: float
    maximum: float


class RollupBuffer:
    """Rollup contributions not yet merged into the table."""

    def __init__(self, flush_seconds: float = _FLUSH_SECONDS) -> None:
        """Merge into the table at most every flush_seconds."""
        self.flush_seconds = flush_seconds
        self._pending: dict[tuple[str, str, int, int], _Aggregate] = {}
        self._last_flush = time.monotonic()

    def add(self, samples: list[Sample]) -> None:
        """Add the metrics of stored samples."""
        pending = self._pending
        widths = tuple(RESOLUTIONS.values())
        for sample in samples:
            epoch = int(sample.sampled_at.timestamp())
            for seconds in widths:
                bucket = epoch - epoch % seconds
                for metric, value in sample.metrics.items():
                    key = (sample.device.id, metric, seconds, bucket)
                    aggregate = pending.get(key)
                    if aggregate is None:
                        pending[key] = _Aggregate(1, value, value, value)
                    else:
                        aggregate.count += 1
                        aggregate.total += value
                        if value < aggregate.minimum:
                            aggregate.minimum = value
                        if value > aggregate.maximum:
                            aggregate.maximum = value

    def due(self) -> bool:
        """Whether it is time to merge."""
        return bool(self._pending) and time.monotonic() - self._last_flush >= self.flush_seconds

    def take(self) -> dict[tuple[str, str, int, int], _Aggregate]:
        """Hand over the pending contributions (give them back with restore on failure)."""
        pending, self._pending = self._pending, {}
        self._last_flush = time.monotonic()
        return pending

    def restore(self, pending: dict[tuple[str, str, int, int], _Aggregate]) -> None:
        """Put back contributions whose merge rolled back."""
        for (device_id, metric, seconds, bucket), aggregate in pending.items():
            key = (device_id, metric, seconds, bucket)
            mine = self._pending.get(key)
            if mine is None:
                self._pending[key] = aggregate
            else:
                mine.count += aggregate.count
                mine.total += aggregate.total
                mine.minimum = min(mine.minimum, aggregate.minimum)
                mine.maximum = max(mine.maximum, aggregate.maximum)


async def merge_rollups(
    session: AsyncSession, pending: dict[tuple[str, str, int, int], _Aggregate]
) -> None:
    """Upsert rollup contributions: counts and sums add up, extremes are kept."""
    if not pending:
        return
    rows = [
        {
            "device_id": device_id,
            "metric": metric,
            "resolution": seconds,
            "bucket": datetime.fromtimestamp(bucket, UTC),
            "count": a.count,
            "total": a.total,
            "minimum": a.minimum,
            "maximum": a.maximum,
        }
        for (device_id, metric, seconds, bucket), a in sorted(
            pending.items(), key=lambda item: (item[0][0], item[0][1], item[0][2], item[0][3])
        )
    ]
    statement = _insert(session, TelemetryRollup)
    excluded = statement.excluded
    postgres = session.get_bind().dialect.name == "postgresql"
    lowest = func.least if postgres else func.min
    highest = func.greatest if postgres else func.max
    statement = statement.on_conflict_do_update(
        index_elements=["device_id", "metric", "resolution", "bucket"],
        set_={
            "count": TelemetryRollup.count + excluded.count,
            "total": TelemetryRollup.total + excluded.total,
            "minimum": lowest(TelemetryRollup.minimum, excluded.minimum),
            "maximum": highest(TelemetryRollup.maximum, excluded.maximum),
        },
    )
    for start in range(0, len(rows), 1000):
        await session.execute(statement, rows[start : start + 1000])


async def rebuild_rollups(
    session: AsyncSession, *, device_id: str, metrics: list[str], start: datetime, end: datetime
) -> None:
    """Recompute a device's rollups in [start, end) from raw samples (after a crash)."""
    start = bucket_of(start, RESOLUTIONS["1h"])
    await session.execute(
        delete(TelemetryRollup).where(
            TelemetryRollup.device_id == device_id,
            TelemetryRollup.bucket >= start,
            TelemetryRollup.bucket < end,
        )
    )
    buffer = RollupBuffer()
    rows = await session.execute(
        select(TelemetrySample.sampled_at, TelemetrySample.data).where(
            TelemetrySample.device_id == device_id,
            TelemetrySample.sampled_at >= start,
            TelemetrySample.sampled_at < end,
        )
    )
    for sampled_at, data in rows:
        values = {m: float(data[m]) for m in metrics if isinstance(data.get(m), int | float)}
        buffer.add([_bare_sample(device_id, sampled_at, values)])
    await merge_rollups(session, buffer.take())


def _bare_sample(device_id: str, sampled_at: datetime, metrics: dict[str, float]) -> Sample:
    from civic.kernel.devices.registry import DeviceRef

    ref = DeviceRef(device_id, "", "", "", "", None, True)
    return Sample(ref, "", sampled_at, sampled_at, {}, metrics)


@dataclass(frozen=True)
class Point:
    """One point of a series: a raw value, or a bucket's statistics."""

    at: datetime
    value: float
    minimum: float
    maximum: float
    count: int


async def series(
    session: AsyncSession,
    *,
    device_id: str,
    metric: str,
    start: datetime,
    end: datetime,
    resolution: str = "raw",
    limit: int = 10_000,
) -> list[Point]:
    """Return a device's metric in [start, end): raw samples, or 1m / 1h averages."""
    if resolution == "raw":
        rows = await session.execute(
            select(TelemetrySample.sampled_at, TelemetrySample.data)
            .where(
                TelemetrySample.device_id == device_id,
                TelemetrySample.sampled_at >= start,
                TelemetrySample.sampled_at < end,
            )
            .order_by(TelemetrySample.sampled_at)
            .limit(limit)
        )
        points = []
        for at, data in rows:
            value = data.get(metric)
            if isinstance(value, bool):
                value = float(value)
            if isinstance(value, int | float):
                points.append(Point(at, float(value), float(value), float(value), 1))
        return points
    seconds = RESOLUTIONS[resolution]
    rollups = await session.scalars(
        select(TelemetryRollup)
        .where(
            TelemetryRollup.device_id == device_id,
            TelemetryRollup.metric == metric,
            TelemetryRollup.resolution == seconds,
            TelemetryRollup.bucket >= bucket_of(start, seconds),
            TelemetryRollup.bucket < end,
        )
        .order_by(TelemetryRollup.bucket)
        .limit(limit)
    )
    return [Point(r.bucket, r.total / r.count, r.minimum, r.maximum, r.count) for r in rollups]


async def purge_raw(session: AsyncSession, *, older_than: timedelta, now: datetime) -> int:
    """Delete raw samples received before now - older_than; return how many."""
    result: Any = await session.execute(
        delete(TelemetrySample).where(TelemetrySample.received_at < now - older_than)
    )
    return int(result.rowcount or 0)
