"""The outbox relay: carries committed events to the subscribers through a transport.

The transport is the in-process one by default (`civic.kernel.bus_delivery`) or NATS JetStream
(`civic.kernel.bus_nats`); the relay claims a batch of undelivered outbox rows, has the
transport deliver (or store) them, and only then marks them published: in the transaction that
handled them when the transport can (in process, one lane), else in the claim's own. A crash in
between leaves them unpublished: they are sent again, and the processed ids of the subscribers
(or JetStream's de-duplication) turn the second sending into nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.bus import (
    Bus,
    DeadLetter,
    OutboxEvent,
    ProcessedEvent,
    RetryPolicy,
    Subscription,
    decode,
    register_waker,
    wake_soon,
)
from civic.kernel.bus_delivery import (
    UNDECODABLE,
    Delivery,
    Envelope,
    InProcessTransport,
    Marker,
)
from civic.kernel.db import transaction, utcnow
from civic.kernel.runtime import Kernel
from civic.kernel.settings import BusSettings

log = structlog.get_logger("civic.bus")
STOP_GRACE_SECONDS = 2.0


class Transport(Protocol):
    """Carries the relay's batches to the durable subscribers and listeners."""

    name: str

    async def start(
        self, sessions: async_sessionmaker[AsyncSession], bus: Bus, *, lanes: int
    ) -> None:
        """Connect, and start whatever delivers to bus's subscribers."""

    async def send(self, envelopes: Sequence[Envelope], *, mark: Marker | None = None) -> bool:
        """Deliver or durably store a batch, in order; raise if any of it was not.

        Return True if mark ran in the transaction that completed the delivery (the relay
        then has nothing left to do); False leaves marking the batch to the relay.
        """

    async def stop(self) -> None:
        """Stop delivering and disconnect."""


def _nothing() -> None:
    pass


def bus_of(kernel: Kernel) -> Bus:
    """Return the bus of a running kernel, to subscribe and listen."""
    return relay_of(kernel).bus


def relay_of(kernel: Kernel) -> OutboxRelay:
    """Return the running outbox relay."""
    return kernel.part("bus", OutboxRelay)


def relay_for(settings: BusSettings, *, sqlite: bool) -> OutboxRelay:
    """Build the relay a configuration asks for: NATS JetStream with a url, else in-process."""
    transport: Transport
    if settings.url:
        from civic.kernel.bus_nats import NatsTransport  # the NATS client only where used

        transport = NatsTransport(
            settings.url,
            stream=settings.stream,
            subject_prefix=settings.subject_prefix,
            max_age_seconds=settings.max_age_hours * 3600,
        )
    else:
        transport = InProcessTransport()
    retry = RetryPolicy(
        attempts=settings.retry_attempts,
        first_delay=settings.retry_first_delay_seconds,
        factor=settings.retry_factor,
    )
    return OutboxRelay(
        Bus(retry=retry),
        transport=transport,
        # SQLite has one writer: more lanes would only queue for its lock.
        lanes=settings.lanes or (1 if sqlite else 4),
        batch=settings.batch,
        poll_seconds=settings.poll_seconds,
    )


async def claim(session: AsyncSession, *, limit: int) -> list[Envelope]:
    """Read the oldest undelivered events; on PostgreSQL lock them until session ends.

    Another process's relay skips locked rows (SKIP LOCKED) and takes the next ones, so two
    processes never deliver the same batch. A claimed event whose key has an earlier event
    locked by another process is left for later: each key stays in order across processes.
    """
    postgres = (await session.connection()).dialect.name == "postgresql"
    stmt = (
        select(
            OutboxEvent.id,
            OutboxEvent.event_id,
            OutboxEvent.name,
            OutboxEvent.key,
            OutboxEvent.payload,
        )
        .where(OutboxEvent.published_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    if postgres:
        stmt = stmt.with_for_update(skip_locked=True)
    rows = [Envelope(*row) for row in (await session.execute(stmt)).all()]
    if not postgres or not rows:
        return rows
    ids = [row.id for row in rows]
    held = await session.execute(
        select(OutboxEvent.key, func.min(OutboxEvent.id))
        .where(
            OutboxEvent.published_at.is_(None),
            OutboxEvent.key.in_({row.key for row in rows}),
            OutboxEvent.id < max(ids),
            OutboxEvent.id.not_in(ids),
        )
        .group_by(OutboxEvent.key)
    )
    first_held_elsewhere: dict[str, int] = dict(held.all())
    return [row for row in rows if row.id < first_held_elsewhere.get(row.key, row.id + 1)]


@dataclass(frozen=True)
class Backlog:
    """Undelivered events in the outbox."""

    count: int
    oldest_at: datetime | None


async def outbox_backlog(session: AsyncSession) -> Backlog:
    """Count the undelivered events and find when the oldest was committed."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(
                OutboxEvent.published_at.is_(None)
            )
        )
    ).one()
    return Backlog(int(count), oldest)


class ReplayError(Exception):
    """A dead letter cannot be replayed here; the message says why."""


class OutboxRelay:
    """Kernel part that moves events from the outbox to the subscribers."""

    name = "bus"
    start_after_services = True

    def __init__(
        self,
        bus: Bus,
        *,
        transport: Transport | None = None,
        lanes: int = 1,
        batch: int = 500,
        poll_seconds: float = 0.5,
    ):
        """Deliver in lanes (ordered per key within a lane), batch rows at a time."""
        self.bus = bus
        self.transport: Transport = transport or InProcessTransport()
        self.lanes = lanes
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] = _nothing
        self._flag = asyncio.Event()
        self._claiming = asyncio.Lock()
        self._stopping = False

    async def start(self, kernel: Kernel) -> None:
        """Start relaying; commits that publish wake the relay at once."""
        self._sessions = kernel.sessions
        self._flag = asyncio.Event()
        self._claiming = asyncio.Lock()
        self._stopping = False
        await self.transport.start(kernel.sessions, self.bus, lanes=self.lanes)
        self._unregister = register_waker(wake_soon(asyncio.get_running_loop(), self._flag))
        self._task = asyncio.create_task(self._run(), name="civic-outbox-relay")

    async def stop(self) -> None:
        """Stop relaying; undelivered events stay in the outbox for the next start."""
        self._unregister()
        if self._task is not None:
            # Let a batch in flight finish rather than cut its transaction off; a handler that
            # hangs is cancelled after the grace period (its batch is delivered again later).
            self._stopping = True
            self._flag.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_GRACE_SECONDS)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self.transport.stop()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                delivered = await self.deliver_pending()
            except Exception:
                log.exception("relay_failed")
                delivered = 0
            if delivered < self.batch and not self._stopping:
                self._flag.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flag.wait(), timeout=self.poll_seconds)

    async def deliver_pending(self) -> int:
        """Deliver one batch of undelivered events; return how many were delivered."""
        assert self._sessions is not None, "relay not started"  # noqa: S101
        # One claim at a time in this process; other processes are kept apart by row locks.
        async with self._claiming, transaction(self._sessions) as session:
            envelopes = await claim(session, limit=self.batch)
            if not envelopes:
                return 0
            ids = [e.id for e in envelopes]

            async def mark(marking: AsyncSession) -> None:
                await marking.execute(
                    update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=utcnow())
                )

            # On PostgreSQL the claim's row locks would block marking from another transaction.
            locked = (await session.connection()).dialect.name == "postgresql"
            if not await self.transport.send(envelopes, mark=None if locked else mark):
                await mark(session)
        return len(envelopes)

    async def replay(self, letter_id: int, *, organisation_id: str) -> bool:
        """Deliver a dead letter again to its subscriber; False if it failed again.

        The subscriber's processed mark of the event, if any, is cleared first, so the handler
        really runs; a failure leaves a new dead letter behind.
        """
        assert self._sessions is not None, "relay not started"  # noqa: S101
        async with transaction(self._sessions) as session:
            letter = await session.get(DeadLetter, letter_id)
            if letter is None or letter.organisation_id not in (None, organisation_id):
                raise LookupError(f"no dead letter {letter_id}")
            targets = self._targets(letter)
            try:
                event = decode(letter.name, letter.payload)
            except Exception as exc:
                raise ReplayError(f"이벤트를 해석할 수 없습니다: {exc}") from exc
            await session.execute(
                delete(ProcessedEvent).where(
                    ProcessedEvent.subscriber.in_([t.name for t in targets]),
                    ProcessedEvent.event_id == letter.event_id,
                )
            )
            letter.replayed_at = utcnow()
        delivery = Delivery(self._sessions, self.bus)
        results = [await delivery.deliver(target, [event]) for target in targets]
        log.info("dead_letter_replayed", letter=letter_id, handled=all(results))
        return all(results)

    def _targets(self, letter: DeadLetter) -> list[Subscription]:
        if letter.subscriber == UNDECODABLE:
            targets = self.bus.wants(letter.name)
            if not targets:
                raise ReplayError(f"'{letter.name}' 이벤트를 받는 구독자가 이 프로세스에 없습니다.")
            return targets
        target = self.bus.named(letter.subscriber)
        if target is None:
            raise ReplayError(f"구독자 '{letter.subscriber}'가 이 프로세스에서 실행 중이 아닙니다.")
        return [target]
