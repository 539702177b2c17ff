"""Handing events to durable subscribers: batches, retries with backoff, dead letters.

A subscriber handles events in a transaction that also records their ids as processed, so a
second delivery of an event (after a crash, or a redelivery by JetStream) is skipped. Both
transports use this module: the in-process one for every batch the relay claims from the outbox,
the NATS one per message, and the admin page to replay a dead letter.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from sqlalchemy import Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.bus import (
    Bus,
    DeadLetter,
    Event,
    ProcessedEvent,
    Subscription,
    decode,
    lane_of,
)
from civic.kernel.db import transaction, utcnow

log = structlog.get_logger("civic.bus")
UNDECODABLE = "(decode)"
# Work the relay wants done in the transaction that completes a batch (marking it published).
Marker = Callable[[AsyncSession], Awaitable[None]]
# Processed ids are written with plain inserts, without the ORM's bookkeeping per row.
_PROCESSED = cast(Table, ProcessedEvent.__table__)


@dataclass(frozen=True)
class BatchOutcome:
    """What handling a batch did: how many events ran, and the first that failed, if one did."""

    handled: int
    failed: int | None = None
    error: Exception | None = None


async def _begin_for_savepoints(session: AsyncSession) -> None:
    # SQLite's driver begins a transaction only at the first write, and a SAVEPOINT taken
    # before that would commit on release: BEGIN IMMEDIATE opens it (and takes the write lock,
    # waiting busy_timeout for it). Batches without savepoints begin lazily instead, holding
    # the one write lock only while their writes are flushed.
    if (await session.connection()).dialect.name == "sqlite":
        await session.execute(text("BEGIN IMMEDIATE"))


async def handle_batch(
    sessions: Any, subscription: Subscription, events: Sequence[Event], *, isolate: bool = False
) -> BatchOutcome:
    """Run a handler for events in order in one transaction, skipping those it handled before.

    Handling stops at the first event whose handler raises. Without isolate the whole
    transaction is then rolled back and nothing counts as handled; with isolate each event runs
    in a SAVEPOINT, so the events before the failing one are committed as handled, and a failure
    that shows only when the handler's writes are flushed is pinned to its event.
    """
    async with transaction(sessions) as session:
        if isolate:
            await _begin_for_savepoints(session)
        seen = set(
            await session.scalars(
                select(ProcessedEvent.event_id).where(
                    ProcessedEvent.subscriber == subscription.name,
                    ProcessedEvent.event_id.in_(list({e.event_id for e in events})),
                )
            )
        )
        done: list[str] = []
        failed: int | None = None
        error: Exception | None = None
        for index, event_ in enumerate(events):
            if event_.event_id in seen:
                continue
            try:
                if isolate:
                    async with session.begin_nested():
                        await subscription.handler(session, event_)
                else:
                    await subscription.handler(session, event_)
            except Exception as exc:  # noqa: BLE001 - reported to the caller, who retries
                failed, error = index, exc
                break
            seen.add(event_.event_id)
            done.append(event_.event_id)
        if failed is not None and not isolate:
            await session.rollback()
            return BatchOutcome(0, failed, error)
        if done:
            now = utcnow()
            await session.execute(
                insert(_PROCESSED),
                [
                    {"subscriber": subscription.name, "event_id": event_id, "processed_at": now}
                    for event_id in done
                ],
            )
    return BatchOutcome(len(done), failed, error)


@dataclass(frozen=True)
class HandlerFailure:
    """The handler that raised in batches handled together: batch and event index, and why."""

    batch: int
    index: int
    error: Exception


async def handle_together(
    sessions: Any,
    batches: Sequence[tuple[Subscription, Sequence[Event]]],
    *,
    then: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> HandlerFailure | None:
    """Run several subscribers' batches in one transaction, then `then`; say which one raised.

    The fast path for a relay batch: one write transaction however many subscribers there are
    (SQLite has one writer, and every other writer waits out its busy handler's sleeps). When a
    handler raises, everything is rolled back and the caller delivers subscriber by subscriber.
    """
    async with transaction(sessions) as session:
        processed: list[dict[str, Any]] = []
        now = utcnow()
        for batch, (subscription, events) in enumerate(batches):
            seen = set(
                await session.scalars(
                    select(ProcessedEvent.event_id).where(
                        ProcessedEvent.subscriber == subscription.name,
                        ProcessedEvent.event_id.in_(list({e.event_id for e in events})),
                    )
                )
            )
            for index, event_ in enumerate(events):
                if event_.event_id in seen:
                    continue
                try:
                    await subscription.handler(session, event_)
                except Exception as exc:  # noqa: BLE001 - the caller goes subscriber by subscriber
                    await session.rollback()
                    return HandlerFailure(batch, index, exc)
                seen.add(event_.event_id)
                processed.append(
                    {
                        "subscriber": subscription.name,
                        "event_id": event_.event_id,
                        "processed_at": now,
                    }
                )
        if processed:
            await session.execute(insert(_PROCESSED), processed)
        if then is not None:
            await then(session)
    return None


async def handle_once(sessions: Any, subscription: Subscription, event_: Event) -> bool:
    """Run a handler for an event unless it ran before; return False if it was a duplicate."""
    outcome = await handle_batch(sessions, subscription, [event_])
    if outcome.error is not None:
        raise outcome.error
    return outcome.handled == 1


@dataclass(frozen=True, slots=True)
class Envelope:
    """One outbox row as the relay hands it to a transport."""

    id: int
    event_id: str
    name: str
    key: str
    payload: dict[str, Any]


async def dead_letter(
    sessions: async_sessionmaker[AsyncSession],
    *,
    subscriber: str,
    event_id: str,
    name: str,
    payload: dict[str, Any],
    error: BaseException,
    attempts: int,
) -> None:
    """Keep an event a subscriber could not handle, to inspect and replay from the admin page."""
    log.error("dead_letter", subscriber=subscriber, event_name=name, error=repr(error))
    organisation = payload.get("organisation_id")
    async with transaction(sessions) as session:
        session.add(
            DeadLetter(
                subscriber=subscriber,
                event_id=event_id,
                name=name,
                payload=payload,
                error=repr(error)[:4000],
                attempts=attempts,
                organisation_id=organisation if isinstance(organisation, str) else None,
            )
        )


class Delivery:
    """Runs the handlers of this process's subscribers, with the bus's retry policy."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        """Deliver through sessions to bus's subscribers."""
        self.sessions = sessions
        self.bus = bus

    async def deliver(
        self,
        subscription: Subscription,
        events: Sequence[Event],
        *,
        failed: tuple[int, Exception] | None = None,
    ) -> bool:
        """Handle events in order, a batch per transaction; False if one was dead-lettered.

        Handlers run without savepoints first: on aiosqlite a SAVEPOINT and its RELEASE cost
        two round trips to the driver's thread per event (measured ≈ 0.8 ms), more than the
        rest of the delivery. When a handler raises, its transaction is rolled back, the events
        before it are handled again as a batch, and it alone is retried with backoff, then
        dead-lettered, before the events after it: each key stays in order. A batch that fails
        as a whole (when the handlers' writes are flushed) is redone with a SAVEPOINT per event
        to find the event that failed. failed: (index, error) of an event whose first attempt
        already failed in a transaction that was rolled back.
        """
        all_handled = True
        start = 0
        while start < len(events):
            prefix_committed = False
            if failed is None:
                rest = events[start:]
                try:
                    outcome = await handle_batch(self.sessions, subscription, rest)
                except Exception:  # noqa: BLE001 - the isolated pass below names the culprit
                    log.warning(
                        "batch_failed_isolating", subscriber=subscription.name, size=len(rest)
                    )
                    outcome = await self._isolated(subscription, rest)
                    prefix_committed = True
                if outcome.failed is None or outcome.error is None:
                    break
                failed = (outcome.failed, outcome.error)
            index, error = start + failed[0], failed[1]
            failed = None
            if index > start and not prefix_committed:
                all_handled &= await self.deliver(subscription, events[start:index])
            all_handled &= await self._retry(subscription, events[index], error)
            start = index + 1
        return all_handled

    async def _isolated(self, subscription: Subscription, events: Sequence[Event]) -> BatchOutcome:
        try:
            return await handle_batch(self.sessions, subscription, events, isolate=True)
        except Exception as exc:  # noqa: BLE001 - not even one event commits: blame the first
            return BatchOutcome(0, 0, exc)

    async def _retry(self, subscription: Subscription, event: Event, error: Exception) -> bool:
        """Retry an event whose first attempt failed; dead-letter it after the last attempt."""
        policy = self.bus.retry
        for attempt in range(2, policy.attempts + 1):
            log.warning(
                "handler_retry",
                subscriber=subscription.name,
                event_name=event.name,
                attempt=attempt,
                error=repr(error),
            )
            await asyncio.sleep(policy.delay(attempt - 1))
            try:
                await handle_once(self.sessions, subscription, event)
                return True
            except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered
                error = exc
        await dead_letter(
            self.sessions,
            subscriber=subscription.name,
            event_id=event.event_id,
            name=event.name,
            payload=event.model_dump(mode="json"),
            error=error,
            attempts=policy.attempts,
        )
        return False


class InProcessTransport:
    """Delivers the relay's batches to the subscribers and listeners of this process."""

    name = "in-process"

    def __init__(self) -> None:
        """Create the transport; it works once started."""
        self._delivery: Delivery | None = None
        self._lanes = 1

    async def start(
        self, sessions: async_sessionmaker[AsyncSession], bus: Bus, *, lanes: int
    ) -> None:
        """Deliver to bus's subscribers in lanes (parallel, ordered within one)."""
        self._delivery = Delivery(sessions, bus)
        self._lanes = lanes

    async def stop(self) -> None:
        """Nothing runs between batches."""
        self._delivery = None

    async def send(self, envelopes: Sequence[Envelope], *, mark: Marker | None = None) -> bool:
        """Deliver a batch: lanes in parallel, each subscriber's events of a lane in one go.

        With one lane, mark runs in the transaction that handles the batch, and True is
        returned: delivering and marking delivered commit together.
        """
        delivery = self._delivery
        if delivery is None:
            raise RuntimeError("the in-process transport is not started")
        lanes: dict[int, list[Envelope]] = defaultdict(list)
        for envelope in envelopes:
            lanes[lane_of(envelope.key, self._lanes)].append(envelope)
        if mark is not None and len(lanes) == 1:
            return await self._lane(delivery, envelopes, mark)
        await asyncio.gather(*(self._lane(delivery, lane, None) for lane in lanes.values()))
        return False

    async def _lane(
        self, delivery: Delivery, envelopes: Sequence[Envelope], mark: Marker | None
    ) -> bool:
        events: list[Event] = []
        for envelope in envelopes:
            try:
                events.append(decode(envelope.name, envelope.payload))
            except Exception as exc:  # noqa: BLE001 - a bad row must not stop the others
                await dead_letter(
                    delivery.sessions,
                    subscriber=UNDECODABLE,
                    event_id=envelope.event_id,
                    name=envelope.name,
                    payload=envelope.payload,
                    error=exc,
                    attempts=1,
                )
        batches = [
            (subscription, wanted)
            for subscription in list(delivery.bus.subscriptions)
            if (wanted := [e for e in events if e.name in subscription.names])
        ]
        together = False
        try:
            failure = await handle_together(delivery.sessions, batches, then=mark)
            together = failure is None
        except Exception:  # noqa: BLE001 - failed at flush or commit: the slow path finds out
            log.warning("batch_failed", size=len(events), subscribers=len(batches))
            failure = None
        if not together:
            for number, (subscription, wanted) in enumerate(batches):
                known = (
                    (failure.index, failure.error) if failure and failure.batch == number else None
                )
                await delivery.deliver(subscription, wanted, failed=known)
        for event in events:
            await delivery.bus.tell_listeners(event)
        return together and mark is not None
