"""The tracking kernel part: takes positions from HTTP and MQTT, stores them, watches silence."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.db import transaction, utcnow
from civic.kernel.identity import Organisation, Role
from civic.kernel.mqtt import mqtt_of
from civic.kernel.realtime import Hub, realtime_of
from civic.kernel.runtime import Kernel
from civic.kernel.settings import TrackingSettings
from civic.kernel.tracking import store
from civic.kernel.tracking.events import SignalEvent, SignalLost, SignalRestored
from civic.kernel.tracking.live import LiveState, LiveSubject, Outcome
from civic.kernel.tracking.models import PERSONAL_KINDS
from civic.kernel.tracking.schemas import PositionReport

log = structlog.get_logger("civic.tracking")
SERVICE = "tracking"
WATCH_ROLES = (Role.DISPATCHER, Role.OPERATOR)
MQTT_FILTER = "civic/+/tracker/+/+/position"
_UNKNOWN_ORGANISATION_SECONDS = 60.0
_LOG_EVERY = 1000
_ATTEMPTS = 3
MESSAGE_ITEMS = 250


def topic_of(kind: str) -> str:
    """Return the realtime topic on which positions of a kind are pushed."""
    return f"tracking.{kind}"


class Tracker:
    """Kernel part: live positions in memory, history stored in batches, lost-signal checks."""

    name = "tracking"

    def __init__(self, settings: TrackingSettings) -> None:
        """Prepare an empty picture; start() loads the last positions."""
        self.settings = settings
        self.state = LiveState(settings)
        self.stored = 0
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._hub: Hub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._organisations: dict[str, str] = {}
        self._unknown: dict[str, float] = {}
        self._next_save = 0.0
        self._failures = 0

    async def start(self, kernel: Kernel) -> None:
        """Load subjects, join the realtime hub and MQTT when they run, start the loops."""
        self._sessions = kernel.sessions
        self._wake, self._lock = asyncio.Event(), asyncio.Lock()
        async with kernel.sessions() as session:
            self.state.load(await store.load_subjects(session))
        self._join_realtime(kernel)
        self._join_mqtt(kernel)
        self._tasks = [
            asyncio.create_task(self._maintain(), name="civic-tracking-store"),
            asyncio.create_task(self._purge_periodically(), name="civic-tracking-purge"),
        ]

    async def stop(self) -> None:
        """Stop the loops and store what is still pending."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.flush(last_positions=True)
        except Exception:
            log.exception("tracking_final_flush_failed", pending=self.state.pending)

    def _join_realtime(self, kernel: Kernel) -> None:
        try:
            hub = realtime_of(kernel)
        except LookupError:
            log.info("tracking_without_realtime")
            return
        hub.register_topic("tracking.", service=SERVICE, roles=WATCH_ROLES)
        for kind in PERSONAL_KINDS:
            hub.register_topic(topic_of(kind), service=SERVICE, roles=WATCH_ROLES, personal=True)
        for event_type in (SignalLost, SignalRestored):
            hub.route(event_type, _signal_message)
        self._hub = hub
        self.state.publisher = self._publish

    def _publish(self, moved: list[LiveSubject]) -> None:
        if self._hub is not None:
            publish_moves(self._hub, moved)

    def _join_mqtt(self, kernel: Kernel) -> None:
        try:
            mqtt = mqtt_of(kernel)
        except LookupError:
            log.info("tracking_without_mqtt")
            return
        mqtt.route(MQTT_FILTER, self.on_mqtt)

    # -- ingest ------------------------------------------------------------------------

    def ingest(
        self,
        reports: list[PositionReport],
        *,
        organisation_id: str,
        source: str,
        now: datetime | None = None,
    ) -> Outcome:
        """Take validated reports of one organisation; history is stored within flush_seconds."""
        outcome = self.state.ingest(
            reports, organisation_id=organisation_id, source=source, now=now or utcnow()
        )
        if self.state.pending >= self.settings.flush_batch:
            self._wake.set()
        return outcome

    async def on_mqtt(self, topic: str, payload: bytes) -> None:
        """Take one position from civic/<organisation code>/tracker/<kind>/<id>/position."""
        levels = topic.split("/")
        if len(levels) != 6:
            self._malformed(topic, "topic must be civic/<org>/tracker/<kind>/<id>/position")
            return
        _, code, _, kind, subject_id, _ = levels
        try:
            data = json.loads(payload)
            if not isinstance(data, dict):
                raise ValueError("the payload must be a JSON object")
            data["kind"], data["subject_id"] = kind, subject_id
            report = PositionReport.model_validate(data)
        except (ValueError, ValidationError) as exc:
            self._malformed(topic, str(exc).splitlines()[0] if str(exc) else repr(exc))
            return
        organisation_id = await self._organisation(code)
        if organisation_id is None:
            self._malformed(topic, f"no organisation has the code {code!r}")
            return
        outcome = self.ingest([report], organisation_id=organisation_id, source="mqtt")
        for rejection in outcome.rejected:
            if self.state.counters.rejected % _LOG_EVERY == 1:
                log.warning("tracking_position_rejected", topic=topic, reason=rejection.reason)

    def _malformed(self, topic: str, reason: str) -> None:
        self.state.counters.malformed += 1
        # A broken device repeats itself: log the first and then one in a thousand.
        if self.state.counters.malformed % _LOG_EVERY == 1:
            log.warning(
                "tracking_malformed_message",
                topic=topic[:200],
                reason=reason[:300],
                malformed=self.state.counters.malformed,
            )

    async def _organisation(self, code: str) -> str | None:
        known = self._organisations.get(code)
        if known is not None:
            return known
        if self._unknown.get(code, 0.0) > time.monotonic():
            return None
        assert self._sessions is not None, "tracking not started"  # noqa: S101
        async with self._sessions() as session:
            found = await session.scalar(select(Organisation.id).where(Organisation.code == code))
        if found is None:
            if len(self._unknown) > 10_000:
                self._unknown.clear()
            self._unknown[code] = time.monotonic() + _UNKNOWN_ORGANISATION_SECONDS
            return None
        self._organisations[code] = found
        return found

    # -- storage and checks ------------------------------------------------------------

    async def flush(self, *, last_positions: bool | None = None) -> int:
        """Store every pending position, one transaction per batch; return how many.

        Last positions of subjects are rewritten only every last_position_seconds (or when
        last_positions is True): history holds every position already.
        """
        assert self._sessions is not None, "tracking not started"  # noqa: S101
        stored = 0
        async with self._lock:
            if last_positions is None:
                last_positions = time.monotonic() >= self._next_save
            if last_positions:
                self._next_save = time.monotonic() + self.settings.last_position_seconds
            while True:
                pending = self.state.take_pending(
                    self.settings.flush_batch, with_moved=last_positions
                )
                if not (
                    pending.history or pending.moved or pending.new_subjects or pending.restored
                ):
                    return stored
                try:
                    async with transaction(self._sessions) as session:
                        await store.store(session, pending)
                except Exception:
                    self._failures += 1
                    if self._failures < _ATTEMPTS:
                        self.state.give_back(pending)
                    else:
                        # History the database refuses again and again must not block the rest;
                        # subjects and signal events are kept, later positions refer to them.
                        self._failures = 0
                        self.state.counters.history_dropped += len(pending.history)
                        self.state.give_back(replace(pending, history=[]))
                        log.error("tracking_batch_dropped", positions=len(pending.history))
                    raise
                self._failures = 0
                stored += len(pending.history)
                self.stored += len(pending.history)

    async def check_signals(self, now: datetime | None = None) -> list[SignalLost]:
        """Raise tracking.signal_lost for subjects silent too long; return those events."""
        assert self._sessions is not None, "tracking not started"  # noqa: S101
        now = now or utcnow()
        await self.flush()
        async with self._lock:
            events = self.state.silent(now)
            if not events:
                return []
            try:
                async with transaction(self._sessions) as session:
                    await store.mark_lost(session, events, at=now)
            except Exception:
                self.state.unmark(events, at=now)  # not recorded: tried again at the next check
                raise
        return events

    async def purge(self, now: datetime | None = None) -> int:
        """Delete positions older than the retention; return how many went."""
        assert self._sessions is not None, "tracking not started"  # noqa: S101
        before = (now or utcnow()) - timedelta(days=self.settings.history_days)
        async with transaction(self._sessions) as session:
            return await store.purge(session, before=before)

    async def _maintain(self) -> None:
        next_check = time.monotonic() + self.settings.check_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.settings.check_seconds
                    await self.check_signals()
            except Exception:
                log.exception("tracking_store_failed", pending=self.state.pending)
                await asyncio.sleep(self.settings.flush_seconds)

    async def _purge_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.purge_minutes * 60)
            try:
                purged = await self.purge()
                log.info("tracking_purged", positions=purged)
            except Exception:
                log.exception("tracking_purge_failed")


def publish_moves(hub: Hub, moved: list[LiveSubject]) -> None:
    """Push moved subjects to live maps: one droppable message per organisation and kind."""
    # One message per batch instead of one per position: the hub's cost is per message.
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for live in moved:
        groups.setdefault((live.organisation_id, live.kind), []).append(live.message())
    for (organisation_id, kind), items in groups.items():
        for start in range(0, len(items), MESSAGE_ITEMS):
            hub.publish(
                topic_of(kind),
                {"type": "positions", "items": items[start : start + MESSAGE_ITEMS]},
                organisation_id=organisation_id,
                droppable=True,
            )


def _signal_message(event: SignalEvent) -> dict[str, dict[str, Any]]:
    kind = "signal_lost" if isinstance(event, SignalLost) else "signal_restored"
    return {
        topic_of(event.kind): {
            "type": kind,
            "kind": event.kind,
            "subject_id": event.external_id,
            "name": event.display_name,
            "lat": event.lat,
            "lon": event.lon,
        }
    }


def tracker_of(kernel: Kernel) -> Tracker:
    """Return the tracking part of a running kernel."""
    return kernel.part("tracking", Tracker)
