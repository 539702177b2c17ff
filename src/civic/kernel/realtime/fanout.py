"""Fan-out between processes: hubs share directly published messages over NATS core pub/sub.

Events from the bus already reach every process's hub through the bus; what a process publishes
itself (positions from its MQTT ingest, say) goes to `civic.realtime.<topic>` as well, and every
other hub delivers it to its own browsers. Core pub/sub is fire-and-forget, like the positions it
carries; sequence numbers stay per process, and a client that resumes on another process (another
epoch) is told to reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import TYPE_CHECKING, Any

import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

if TYPE_CHECKING:
    from civic.kernel.realtime.hub import Hub

log = structlog.get_logger("civic.realtime")
SUBJECT_PREFIX = "civic.realtime."
OUTBOX_LIMIT = 10_000


def subject_of(topic: str) -> str:
    """Return the NATS subject of a topic (dots would split it into more tokens)."""
    return SUBJECT_PREFIX + topic.replace(".", "_")


class NatsFanout:
    """One NATS connection of a hub: publishes its own messages and delivers everyone else's."""

    def __init__(self, hub: Hub, url: str) -> None:
        """Share hub's messages through the NATS server at url."""
        self.hub = hub
        self.url = url
        self.received = 0
        self.lost = 0
        self._client: Client | None = None
        self._pending: deque[tuple[str, bytes, bool]] = deque()
        self._ready = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and subscribe to every hub's messages."""
        self._client = await nats.connect(
            self.url, name=f"civic-realtime-{self.hub.epoch}", max_reconnect_attempts=-1
        )
        await self._client.subscribe(SUBJECT_PREFIX + ">", cb=self._on_message)
        self._pump = asyncio.create_task(self._run(), name="civic-realtime-fanout")

    async def stop(self) -> None:
        """Send what is pending, then disconnect."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                for subject, payload, _ in self._pending:
                    await self._client.publish(subject, payload)
                await self._client.drain()
            self._client = None
        self._pending.clear()

    def send(
        self, topic: str, data: dict[str, Any], *, organisation_id: str | None, droppable: bool
    ) -> None:
        """Queue a message for the other hubs without waiting."""
        if len(self._pending) >= OUTBOX_LIMIT:
            # NATS is unreachable or slow: positions give way; alarms still reach this process.
            self._pending.popleft()
            self.lost += 1
        document = {
            "origin": self.hub.epoch,
            "topic": topic,
            "organisation_id": organisation_id,
            "droppable": droppable,
            "data": data,
        }
        payload = json.dumps(document, ensure_ascii=False, default=str).encode()
        self._pending.append((subject_of(topic), payload, droppable))
        self._ready.set()

    async def _run(self) -> None:
        assert self._client is not None  # noqa: S101
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                subject, payload, _ = self._pending.popleft()
                try:
                    await self._client.publish(subject, payload)
                except Exception:
                    self.lost += 1
                    log.exception("realtime_fanout_failed", subject=subject)

    async def _on_message(self, message: Msg) -> None:
        try:
            document = json.loads(message.data)
            if document["origin"] == self.hub.epoch:
                return  # our own message, delivered locally already
            self.hub.deliver(
                str(document["topic"]),
                dict(document["data"]),
                organisation_id=document["organisation_id"],
                droppable=bool(document["droppable"]),
            )
            self.received += 1
        except (ValueError, KeyError, TypeError):
            self.hub.stats.malformed += 1
            log.warning("realtime_fanout_malformed", subject=message.subject)
