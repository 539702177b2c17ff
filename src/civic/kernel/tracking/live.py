"""The in-memory picture of who is where: validation, last positions, the moving index.

Everything here is synchronous and does no I/O, so a position costs a few microseconds: the
part (part.py) stores history in batches and publishes to browsers around it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from civic.kernel.geo.moving import MovingIndex
from civic.kernel.geo.points import Point
from civic.kernel.settings import TrackingSettings
from civic.kernel.tracking.events import SignalLost, SignalRestored
from civic.kernel.tracking.models import TrackedSubject, is_personal, subject_key
from civic.kernel.tracking.schemas import PositionReport, Rejection

# A history row, in the column order of TrackedPosition (without its id).
HistoryRow = tuple[
    str, float, float, float | None, float | None, float | None, datetime, datetime, str
]
HISTORY_COLUMNS = (
    "subject_id",
    "lat",
    "lon",
    "accuracy_m",
    "speed_mps",
    "heading_deg",
    "device_time",
    "received_at",
    "source",
)
Publisher = Callable[[list["LiveSubject"]], None]


@dataclass(slots=True, eq=False)
class LiveSubject:
    """A subject as this process knows it now."""

    id: str
    organisation_id: str
    kind: str
    external_id: str
    display_name: str
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    device_time: datetime | None = None
    received_at: datetime | None = None
    source: str | None = None
    lost_at: datetime | None = None

    @property
    def personal(self) -> bool:
        """Whether this subject's positions are personal data."""
        return is_personal(self.kind)

    def message(self) -> dict[str, Any]:
        """Return where it is now, as an item of a realtime message for maps."""
        return {
            "kind": self.kind,
            "subject_id": self.external_id,
            "name": self.display_name,
            "lat": self.lat,
            "lon": self.lon,
            "speed_mps": self.speed_mps,
            "heading_deg": self.heading_deg,
            "time": self.device_time.isoformat() if self.device_time else None,
        }


@dataclass
class Outcome:
    """What became of some positions."""

    accepted: int = 0
    history_only: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    moved: dict[str, LiveSubject] = field(default_factory=dict)


@dataclass
class Pending:
    """What the next flush stores, taken out of the live state in one step."""

    new_subjects: list[LiveSubject]
    history: list[HistoryRow]
    moved: list[LiveSubject]
    restored: list[SignalRestored]


@dataclass
class Counters:
    """How many positions went where since start."""

    accepted: int = 0
    history_only: int = 0
    duplicates: int = 0
    rejected: int = 0
    malformed: int = 0
    history_dropped: int = 0


class LiveState:
    """Last positions, one moving index per organisation and kind, and what awaits storage."""

    def __init__(self, settings: TrackingSettings, publisher: Publisher | None = None) -> None:
        """Start empty; after each ingest, publisher is told of the subjects that moved."""
        self.settings = settings
        self.publisher = publisher
        self.subjects: dict[tuple[str, str, str], LiveSubject] = {}
        self.by_id: dict[str, LiveSubject] = {}
        self.indexes: dict[tuple[str, str], MovingIndex] = {}
        self.counters = Counters()
        self._new: list[LiveSubject] = []
        self._history: deque[HistoryRow] = deque()
        self._moved: dict[str, LiveSubject] = {}
        self._restored: list[SignalRestored] = []
        self._future = timedelta(seconds=settings.future_tolerance_seconds)
        self._retention = timedelta(days=settings.history_days)

    def load(self, rows: Iterable[TrackedSubject]) -> None:
        """Take subjects and their last positions from the database (at start)."""
        for row in rows:
            live = LiveSubject(
                id=row.id,
                organisation_id=row.organisation_id,
                kind=row.kind,
                external_id=row.external_id,
                display_name=row.display_name,
                lat=row.last_lat,
                lon=row.last_lon,
                accuracy_m=row.last_accuracy_m,
                speed_mps=row.last_speed_mps,
                heading_deg=row.last_heading_deg,
                device_time=row.last_device_time,
                received_at=row.last_received_at,
                source=row.last_source,
                lost_at=row.signal_lost_at,
            )
            self.subjects[(live.organisation_id, live.kind, live.external_id)] = live
            self.by_id[live.id] = live
            if live.lat is not None and live.lon is not None and live.lost_at is None:
                self._index(live).move(live.id, live.lat, live.lon)

    @property
    def pending(self) -> int:
        """Positions waiting to be stored."""
        return len(self._history)

    def _index(self, subject: LiveSubject) -> MovingIndex:
        key = (subject.organisation_id, subject.kind)
        index = self.indexes.get(key)
        if index is None:
            index = self.indexes[key] = MovingIndex()
        return index

    def subject(self, organisation_id: str, kind: str, external_id: str) -> LiveSubject | None:
        """Return a known subject."""
        return self.subjects.get((organisation_id, kind, external_id))

    def ingest(
        self,
        reports: list[PositionReport],
        *,
        organisation_id: str,
        source: str,
        now: datetime,
    ) -> Outcome:
        """Take reports of one organisation: newest ones move their subject, older go to history."""
        outcome = Outcome()
        latest = now + self._future
        oldest = now - self._retention
        for index, report in enumerate(reports):
            device_time = report.time or now
            if device_time > latest:
                outcome.rejected.append(
                    Rejection(
                        index=index,
                        subject_id=report.subject_id,
                        reason=f"time {device_time.isoformat()} is in the future "
                        f"(server time {now.isoformat()}); check the device clock",
                    )
                )
                continue
            if device_time < oldest:
                outcome.rejected.append(
                    Rejection(
                        index=index,
                        subject_id=report.subject_id,
                        reason=f"time {device_time.isoformat()} is older than the "
                        f"{self.settings.history_days:g}-day retention",
                    )
                )
                continue
            self._take(report, organisation_id, source, device_time, now, outcome)
        self.counters.accepted += outcome.accepted
        self.counters.history_only += outcome.history_only
        self.counters.duplicates += outcome.duplicates
        self.counters.rejected += len(outcome.rejected)
        if self.publisher is not None and outcome.moved:
            self.publisher(list(outcome.moved.values()))
        return outcome

    def _take(
        self,
        report: PositionReport,
        organisation_id: str,
        source: str,
        device_time: datetime,
        now: datetime,
        outcome: Outcome,
    ) -> None:
        kind = report.kind.value
        live = self.subjects.get((organisation_id, kind, report.subject_id))
        if live is None:
            live = LiveSubject(
                id=subject_key(organisation_id, kind, report.subject_id),
                organisation_id=organisation_id,
                kind=kind,
                external_id=report.subject_id,
                display_name=report.name or report.subject_id,
            )
            self.subjects[(organisation_id, kind, report.subject_id)] = live
            self.by_id[live.id] = live
            self._new.append(live)
        elif report.name is not None and report.name != live.display_name:
            live.display_name = report.name
            self._moved[live.id] = live
        last = live.device_time
        if last is not None and device_time <= last:
            if device_time == last and report.lat == live.lat and report.lon == live.lon:
                outcome.duplicates += 1
                return
            outcome.history_only += 1
        else:
            live.lat, live.lon = report.lat, report.lon
            live.accuracy_m, live.speed_mps = report.accuracy_m, report.speed_mps
            live.heading_deg, live.device_time = report.heading_deg, device_time
            live.received_at, live.source = now, source
            if live.lost_at is not None:
                self._restore(live, now)
            self._index(live).move(live.id, report.lat, report.lon)
            self._moved[live.id] = live
            outcome.accepted += 1
            outcome.moved[live.id] = live
        self._keep(
            (
                live.id,
                report.lat,
                report.lon,
                report.accuracy_m,
                report.speed_mps,
                report.heading_deg,
                device_time,
                now,
                source,
            )
        )

    def _keep(self, row: HistoryRow) -> None:
        if len(self._history) >= self.settings.max_pending:
            # Storage fell far behind: the oldest history goes, live positions stay right.
            self._history.popleft()
            self.counters.history_dropped += 1
        self._history.append(row)

    def _restore(self, live: LiveSubject, now: datetime) -> None:
        assert live.lost_at is not None  # noqa: S101 - checked by the caller
        self._restored.append(
            SignalRestored(
                organisation_id=live.organisation_id,
                subject_id=live.id,
                kind=live.kind,
                external_id=live.external_id,
                display_name=live.display_name,
                personal=live.personal,
                lat=live.lat,
                lon=live.lon,
                lost_at=live.lost_at,
                lost_for_seconds=(now - live.lost_at).total_seconds(),
            )
        )
        live.lost_at = None

    def take_pending(self, limit: int, *, with_moved: bool = True) -> Pending:
        """Remove and return what the next transaction stores: at most limit history rows."""
        count = min(limit, len(self._history))
        history = [self._history.popleft() for _ in range(count)]
        moved = list(self._moved.values()) if with_moved else []
        pending = Pending(
            new_subjects=self._new, history=history, moved=moved, restored=self._restored
        )
        self._new, self._restored = [], []
        if with_moved:
            self._moved = {}
        return pending

    @property
    def moved(self) -> int:
        """Subjects whose last position is newer in memory than in the database."""
        return len(self._moved)

    def give_back(self, pending: Pending) -> None:
        """Put back what a failed transaction did not store, to be tried again."""
        self._new = pending.new_subjects + self._new
        for live in pending.moved:
            self._moved.setdefault(live.id, live)
        self._restored = pending.restored + self._restored
        room = self.settings.max_pending - len(self._history)
        keep = pending.history[-room:] if room > 0 else []
        self.counters.history_dropped += len(pending.history) - len(keep)
        self._history.extendleft(reversed(keep))

    def silent(self, now: datetime) -> list[SignalLost]:
        """Mark subjects silent longer than their kind allows as lost; return the events."""
        limits = self.settings.lost_after_seconds
        default = self.settings.default_lost_after_seconds
        events: list[SignalLost] = []
        for live in self.by_id.values():
            if live.lost_at is not None or live.received_at is None:
                continue
            silent = (now - live.received_at).total_seconds()
            if silent <= limits.get(live.kind, default):
                continue
            live.lost_at = now
            self._index(live).remove(live.id)
            events.append(
                SignalLost(
                    organisation_id=live.organisation_id,
                    subject_id=live.id,
                    kind=live.kind,
                    external_id=live.external_id,
                    display_name=live.display_name,
                    personal=live.personal,
                    lat=live.lat,
                    lon=live.lon,
                    last_received_at=live.received_at,
                    silent_seconds=silent,
                )
            )
        return events

    def unmark(self, events: Iterable[SignalLost], *, at: datetime) -> None:
        """Undo lost marks that could not be stored, so that the next check raises them."""
        for event in events:
            live = self.by_id[event.subject_id]
            if live.lost_at == at and live.lat is not None and live.lon is not None:
                live.lost_at = None
                self._index(live).move(live.id, live.lat, live.lon)

    def within(
        self, organisation_id: str, kinds: Iterable[str], point: Point, radius_m: float
    ) -> list[tuple[LiveSubject, float]]:
        """Return subjects with a signal within radius_m of point, nearest first."""
        found: list[tuple[LiveSubject, float]] = []
        for kind in dict.fromkeys(kinds):
            index = self.indexes.get((organisation_id, kind))
            if index is not None:
                found += [
                    (self.by_id[hit.key], hit.distance_m)
                    for hit in index.within_radius(point, radius_m)
                ]
        return sorted(found, key=lambda pair: (pair[1], pair[0].kind, pair[0].external_id))

    def nearest(
        self, organisation_id: str, kinds: Iterable[str], point: Point, k: int
    ) -> list[tuple[LiveSubject, float]]:
        """Return the k subjects with a signal nearest to point."""
        found: list[tuple[LiveSubject, float]] = []
        for kind in dict.fromkeys(kinds):
            index = self.indexes.get((organisation_id, kind))
            if index is not None:
                found += [(self.by_id[hit.key], hit.distance_m) for hit in index.nearest(point, k)]
        found.sort(key=lambda pair: (pair[1], pair[0].kind, pair[0].external_id))
        return found[:k]

    def of(self, organisation_id: str, kinds: Iterable[str]) -> Iterator[LiveSubject]:
        """Return the subjects of an organisation and some kinds."""
        wanted = set(kinds)
        for live in self.by_id.values():
            if live.organisation_id == organisation_id and live.kind in wanted:
                yield live
