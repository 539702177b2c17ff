"""One browser's connection: a bounded send queue where positions give way and alarms never do."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from civic.kernel.identity import Principal
from civic.kernel.realtime.hub import HubStats

SLOW_CONSUMER = 4008  # the client must reconnect and resume from its last sequence number
UNAUTHENTICATED = 4401
GOING_AWAY = 1001


class FrameSink(Protocol):
    """Where frames go: a Starlette WebSocket."""

    async def send_text(self, data: str) -> None:
        """Send one text frame."""


class Connection:
    """A subscriber's send queue, its topics, and why it must close, if it must."""

    def __init__(
        self, sink: FrameSink, principal: Principal, *, capacity: int, stats: HubStats
    ) -> None:
        """Queue at most capacity frames for sink on behalf of principal."""
        self.sink = sink
        self.principal = principal
        self.organisation_id = principal.organisation_id
        self.capacity = capacity
        self.stats = stats
        self.topics: set[str] = set()
        self.close_code: int | None = None
        self.close_reason = ""
        self.closing = asyncio.Event()
        self._queue: deque[tuple[str, bool, bool]] = deque()
        self._droppable = 0
        self._replayed = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        """Frames waiting to be sent."""
        return len(self._queue)

    def room(self) -> int:
        """How many more live frames fit before something must give way."""
        return self.capacity - (len(self._queue) - self._replayed)

    def offer(self, frame: str, *, droppable: bool, replayed: bool = False) -> None:
        """Queue a frame without waiting; when full drop the oldest droppable, else close.

        Replayed frames (what a resuming client missed, at most one buffer per topic) do not
        count against the capacity: the client that was closed for being slow could otherwise
        never catch up.
        """
        if self.close_code is not None:
            return
        queue = self._queue
        if not replayed and len(queue) - self._replayed >= self.capacity:
            if self._droppable:
                self._drop_oldest_droppable()
            elif droppable:
                self.stats.dropped += 1
                return
            else:
                # Dropping an alarm is never acceptable: let the client resume from the buffer.
                self.stats.slow_closed += 1
                self.close_soon(SLOW_CONSUMER, "too slow: reconnect and resume")
                return
        queue.append((frame, droppable, replayed))
        if droppable:
            self._droppable += 1
        if replayed:
            self._replayed += 1
        self._ready.set()

    def _drop_oldest_droppable(self) -> None:
        for index, (_, droppable, replayed) in enumerate(self._queue):
            if droppable:
                del self._queue[index]
                self._droppable -= 1
                self._replayed -= replayed
                self.stats.dropped += 1
                return

    def close_soon(self, code: int, reason: str) -> None:
        """Ask the endpoint to close this connection with code; queued frames are abandoned."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._queue.clear()
            self._droppable = 0
            self._replayed = 0
            self.closing.set()

    async def run_sender(self) -> None:
        """Send queued frames in order until cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue and self.close_code is None:
                frame, droppable, replayed = self._queue.popleft()
                self._droppable -= droppable
                self._replayed -= replayed
                await self.sink.send_text(frame)
                self.stats.delivered += 1

    async def wait_closing(self) -> None:
        """Return once the connection was asked to close."""
        await self.closing.wait()
