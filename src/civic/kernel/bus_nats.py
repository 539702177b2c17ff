"""NATS JetStream transport: the outbox relay publishes, durable pull consumers deliver.

Each event goes to the subject `<prefix>.<name>.<lane>` of one stream, with the header
Nats-Msg-Id = event id, so that JetStream drops a second publication of it (the relay publishes
again whatever it had not marked published before a crash). Every durable subscriber gets one
durable pull consumer per lane, named after it: all processes running that subscriber share the
consumers, so each event is handled by one of them (one consumer group per subscriber).

Order per key: a key always takes the same lane, and each lane's consumer has max_ack_pending=1,
so the server hands out the next event of a lane only once the previous one was acknowledged
or terminated, whichever process holds it; a failing event is redelivered (nak with delay) and
keeps the events behind it waiting, as the in-process bus does. Lanes give parallelism back:
`lanes` events of one subscriber are in flight at once. (A single consumer with a larger
max_ack_pending would let two processes handle two events of one key at the same time.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import zlib
from collections.abc import Sequence
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.bus import Bus, Subscription, decode, lane_of
from civic.kernel.bus_delivery import Delivery, Envelope, Marker, dead_letter, handle_once

log = structlog.get_logger("civic.bus")
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_-]")


def consumer_name(subscriber: str, lane: int) -> str:
    """Return the durable consumer name of a subscriber's lane (JetStream allows [A-Za-z0-9_-])."""
    clean = _NOT_IN_NAMES.sub("_", subscriber)
    if clean != subscriber:  # 'a.b' and 'a_b' must not share a consumer
        clean = f"{clean}_{zlib.crc32(subscriber.encode()):08x}"
    return f"{clean}-{lane}"


class NatsTransport:
    """Publishes the outbox to JetStream and runs this process's share of the consumers."""

    name = "nats"

    def __init__(
        self,
        url: str,
        *,
        stream: str = "CIVIC",
        subject_prefix: str = "civic.events",
        max_age_seconds: float = 7 * 24 * 3600,
        timeout_seconds: float = 10.0,
        fetch_seconds: float = 5.0,
    ) -> None:
        """Talk to the NATS server at url, keeping events in stream for max_age_seconds."""
        self.url = url
        self.stream = stream
        self.prefix = subject_prefix
        self.max_age_seconds = max_age_seconds
        self.timeout = timeout_seconds
        self.fetch_seconds = fetch_seconds
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._bus = Bus()
        self._delivery: Delivery | None = None
        self._lanes = 1
        self._setups: set[asyncio.Task[None]] = set()
        self._consumers: list[asyncio.Task[None]] = []
        self._subscriptions: list[Any] = []

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context of the connection."""
        if self._js is None:
            raise RuntimeError("the NATS transport is not started")
        return self._js

    async def start(
        self, sessions: async_sessionmaker[AsyncSession], bus: Bus, *, lanes: int
    ) -> None:
        """Connect, make sure the stream exists, and start the consumers of bus's subscribers."""
        try:
            self._nc = await nats.connect(
                self.url, name="civic", connect_timeout=self.timeout, max_reconnect_attempts=-1
            )
        except Exception as exc:
            raise RuntimeError(f"NATS at {self.url} is not reachable: {exc!r}") from exc
        self._js = self._nc.jetstream(timeout=self.timeout)
        self._bus, self._lanes = bus, lanes
        self._delivery = Delivery(sessions, bus)
        await self._ensure_stream()
        # Listeners are not durable: every process hears every event from now on.
        self._subscriptions.append(
            await self.js.subscribe(
                f"{self.prefix}.>",
                cb=self._tell_listeners,
                stream=self.stream,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
            )
        )
        bus.watchers.append(self._watch)
        for subscription in bus.subscriptions:
            self._watch(subscription)

    async def _ensure_stream(self) -> None:
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.prefix}.>"],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    max_age=self.max_age_seconds,
                    duplicate_window=min(120.0, self.max_age_seconds),
                )
            )

    def _watch(self, subscription: Subscription) -> None:
        task = asyncio.create_task(
            self._setup(subscription), name=f"civic-nats-{subscription.name}"
        )
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    async def _setup(self, subscription: Subscription) -> None:
        names = sorted(subscription.names)
        for lane in range(self._lanes):
            durable = consumer_name(subscription.name, lane)
            # One event type: the server filters exactly. Several: the lane's whole subject
            # space, skipping the rest here (servers before 2.10 take one filter subject).
            name = names[0] if len(names) == 1 else "*.*"
            wanted = f"{self.prefix}.{name}.{lane}"
            for attempt in itertools.count(1):
                try:
                    await self._ensure_consumer(durable, wanted)
                    pull = await self.js.pull_subscribe_bind(durable=durable, stream=self.stream)
                    break
                except Exception:
                    # Until it exists, send() refuses to publish: no event passes it by.
                    log.exception("nats_consumer_failed", consumer=durable, attempt=attempt)
                    await asyncio.sleep(min(30.0, 0.5 * attempt))
            self._subscriptions.append(pull)
            self._consumers.append(
                asyncio.create_task(self._consume(subscription, pull), name=f"civic-{durable}")
            )

    async def _ensure_consumer(self, durable: str, subject: str) -> None:
        try:
            info = await self.js.consumer_info(self.stream, durable)
        except NotFoundError:
            await self.js.add_consumer(
                self.stream,
                ConsumerConfig(
                    durable_name=durable,
                    # A new subscriber starts with the events published from now on.
                    deliver_policy=DeliverPolicy.NEW,
                    ack_policy=AckPolicy.EXPLICIT,
                    max_ack_pending=1,
                    max_deliver=-1,  # the retry policy decides, and dead-letters
                    filter_subject=subject,
                ),
            )
            return
        if info.config.filter_subject != subject:
            log.warning(
                "nats_consumer_differs",
                consumer=durable,
                has=info.config.filter_subject,
                want=subject,
            )

    async def _consume(self, subscription: Subscription, pull: Any) -> None:
        while True:
            try:
                messages: list[Msg] = await pull.fetch(1, timeout=self.fetch_seconds)
            except TimeoutError:
                continue
            except Exception:
                log.exception("nats_fetch_failed", subscriber=subscription.name)
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                try:
                    await self._handle(subscription, message)
                except Exception:
                    log.exception("nats_handle_failed", subscriber=subscription.name)

    def _name_of(self, subject: str) -> str:
        return subject[len(self.prefix) + 1 :].rsplit(".", 1)[0]

    async def _handle(self, subscription: Subscription, message: Msg) -> None:
        name = self._name_of(message.subject)
        if name not in subscription.names:
            await message.ack()
            return
        delivery = self._delivery
        assert delivery is not None  # noqa: S101
        attempt = message.metadata.num_delivered
        payload: Any = None
        try:
            payload = json.loads(message.data)
            event = decode(name, payload)
        except Exception as exc:  # noqa: BLE001 - retrying would not make it readable
            raw = message.data.decode(errors="replace")
            await dead_letter(
                delivery.sessions,
                subscriber=subscription.name,
                event_id=str(payload.get("event_id", ""))[:32] if isinstance(payload, dict) else "",
                name=name,
                payload=payload if isinstance(payload, dict) else {"raw": raw[:10_000]},
                error=exc,
                attempts=attempt,
            )
            await message.term()
            return
        try:
            await handle_once(delivery.sessions, subscription, event)
        except Exception as exc:  # noqa: BLE001 - redelivered by the server, then dead-lettered
            policy = self._bus.retry
            if attempt < policy.attempts:
                log.warning(
                    "handler_retry",
                    subscriber=subscription.name,
                    event_name=name,
                    attempt=attempt + 1,
                    error=repr(exc),
                )
                await message.nak(delay=policy.delay(attempt))
                return
            await dead_letter(
                delivery.sessions,
                subscriber=subscription.name,
                event_id=event.event_id,
                name=name,
                payload=event.model_dump(mode="json"),
                error=exc,
                attempts=attempt,
            )
            await message.term()
            return
        await message.ack()

    async def _tell_listeners(self, message: Msg) -> None:
        name = self._name_of(message.subject)
        try:
            event = decode(name, json.loads(message.data))
        except Exception:  # noqa: BLE001 - listeners are best effort; subscribers dead-letter
            log.warning("nats_listener_undecodable", event_name=name)
            return
        await self._bus.tell_listeners(event)

    async def send(self, envelopes: Sequence[Envelope], *, mark: Marker | None = None) -> bool:
        """Publish a batch in order and wait for JetStream to have stored every event."""
        if self._setups:
            # A subscriber that joined just before this commit gets its consumer first.
            _, pending = await asyncio.wait(set(self._setups), timeout=self.timeout)
            if pending:
                raise RuntimeError("NATS consumers of new subscribers are not ready yet")
        acks = []
        for envelope in envelopes:
            lane = lane_of(envelope.key, self._lanes)
            acks.append(
                await self.js.publish_async(
                    f"{self.prefix}.{envelope.name}.{lane}",
                    json.dumps(envelope.payload, separators=(",", ":")).encode(),
                    stream=self.stream,
                    headers={"Nats-Msg-Id": envelope.event_id},
                )
            )
        try:
            await asyncio.wait_for(asyncio.gather(*acks), timeout=self.timeout)
        finally:
            for ack in acks:
                ack.cancel()
        return False

    async def stop(self) -> None:
        """Stop the consumers and close the connection."""
        with contextlib.suppress(ValueError):
            self._bus.watchers.remove(self._watch)
        tasks = [*self._setups, *self._consumers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._consumers.clear()
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._subscriptions.clear()
        if self._nc is not None:
            await self._nc.close()
            self._nc = None
            self._js = None
