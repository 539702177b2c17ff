"""The outbox relay: delivers committed events to durable subscribers and listeners."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.bus import (
    Bus,
    DeadLetter,
    Event,
    OutboxEvent,
    Subscription,
    decode,
    handle_once,
    lane_of,
    register_waker,
    wake_soon,
)
from civic.kernel.db import transaction, utcnow
from civic.kernel.runtime import Kernel

log = structlog.get_logger("civic.bus")


def _nothing() -> None:
    pass


def bus_of(kernel: Kernel) -> Bus:
    """Return the bus of a running kernel, to subscribe and listen."""
    return kernel.part("bus", OutboxRelay).bus


class OutboxRelay:
    """Kernel part that moves events from the outbox to this process's subscribers."""

    name = "bus"
    start_after_services = True

    def __init__(self, bus: Bus, *, lanes: int = 1, batch: int = 500, poll_seconds: float = 0.5):
        """Deliver in lanes (ordered per key within a lane), batch rows at a time."""
        self.bus = bus
        self.lanes = lanes
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] = _nothing
        self._flag = asyncio.Event()

    async def start(self, kernel: Kernel) -> None:
        """Start relaying; commits that publish wake the relay at once."""
        self._sessions = kernel.sessions
        self._flag = asyncio.Event()
        self._unregister = register_waker(wake_soon(asyncio.get_running_loop(), self._flag))
        self._task = asyncio.create_task(self._run(), name="civic-outbox-relay")

    async def stop(self) -> None:
        """Stop relaying; undelivered events stay in the outbox for the next start."""
        self._unregister()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                delivered = await self.deliver_pending()
            except Exception:
                log.exception("relay_failed")
                delivered = 0
            if delivered < self.batch:
                self._flag.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flag.wait(), timeout=self.poll_seconds)

    async def deliver_pending(self) -> int:
        """Deliver one batch of undelivered events; return how many were delivered."""
        assert self._sessions is not None, "relay not started"  # noqa: S101
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(self.batch)
                )
            ).all()
        if not rows:
            return 0
        lanes: dict[int, list[OutboxEvent]] = defaultdict(list)
        for row in rows:
            lanes[lane_of(row.key, self.lanes)].append(row)
        await asyncio.gather(*(self._deliver_lane(lane) for lane in lanes.values()))
        async with transaction(self._sessions) as session:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([row.id for row in rows]))
                .values(published_at=utcnow())
            )
        return len(rows)

    async def _deliver_lane(self, rows: list[OutboxEvent]) -> None:
        for row in rows:
            try:
                event = decode(row.name, row.payload)
            except Exception as exc:  # noqa: BLE001 - a bad row must not stop the others
                await self._dead_letter("(decode)", row.event_id, row.name, row.payload, exc, 1)
                continue
            for subscription in self.bus.wants(row.name):
                await self._deliver(subscription, event)
            await self._tell_listeners(event)

    async def _deliver(self, subscription: Subscription, event: Event) -> None:
        assert self._sessions is not None  # noqa: S101
        policy = self.bus.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                await handle_once(self._sessions, subscription, event)
                return
            except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered
                if attempt == policy.attempts:
                    payload = event.model_dump(mode="json")
                    await self._dead_letter(
                        subscription.name, event.event_id, event.name, payload, exc, attempt
                    )
                    return
                log.warning(
                    "handler_retry",
                    subscriber=subscription.name,
                    event_name=event.name,
                    error=repr(exc),
                )
                await asyncio.sleep(policy.delay(attempt))

    async def _tell_listeners(self, event: Event) -> None:
        for names, listener in self.bus.listeners:
            if names is None or event.name in names:
                try:
                    await listener(event)
                except Exception:
                    log.exception("listener_failed", event_name=event.name)

    async def _dead_letter(
        self,
        subscriber: str,
        event_id: str,
        name: str,
        payload: dict[str, object],
        error: BaseException,
        attempts: int,
    ) -> None:
        assert self._sessions is not None  # noqa: S101
        log.error("dead_letter", subscriber=subscriber, event_name=name, error=repr(error))
        async with transaction(self._sessions) as session:
            session.add(
                DeadLetter(
                    subscriber=subscriber,
                    event_id=event_id,
                    name=name,
                    payload=payload,
                    error=repr(error)[:4000],
                    attempts=attempts,
                )
            )
