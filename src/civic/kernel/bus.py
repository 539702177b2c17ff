"""Typed events published on commit through the outbox, delivered at least once.

Publishing writes the event into the outbox table inside the caller's transaction, so an event
exists exactly when the change that caused it was committed. The relay (a kernel part, in
`civic.kernel.relay`) reads the outbox after commit and carries the events to the durable
subscribers, in process or through NATS JetStream. A subscriber handles events in a transaction
that also records their ids as processed: a redelivery after a crash is skipped, so handlers run
once per event even though delivery is at least once.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    insert,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, SessionTransaction, mapped_column

from civic.kernel.db import Base, UtcDateTime, new_id, utcnow

log = structlog.get_logger("civic.bus")
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")
EVENT_TYPES: dict[str, type[Event]] = {}


class Event(BaseModel):
    """An immutable fact named `<area>.<past_tense>`; subclasses set `name` and their fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    event_id: str = Field(default_factory=new_id, description="Unique id, for de-duplication.")
    occurred_at: datetime = Field(default_factory=utcnow, description="When it happened (UTC).")
    organisation_id: str | None = Field(default=None, description="Owner, for filtering.")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Register each concrete event type under its name."""
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return  # an abstract family of events
        if not isinstance(name, str) or not _EVENT_NAME.match(name):
            raise TypeError(f"{cls.__name__}.name must look like 'area.past_tense', not {name!r}")
        if name in EVENT_TYPES and EVENT_TYPES[name].__qualname__ != cls.__qualname__:
            raise TypeError(f"two event types are named {name!r}")
        EVENT_TYPES[name] = cls

    def key(self) -> str:
        """Return the aggregate of this event; events of one key are delivered in order."""
        return self.event_id


E = TypeVar("E", bound=Event)
Handler = Callable[[AsyncSession, Any], Awaitable[None]]
Listener = Callable[[Event], Awaitable[None]]


class OutboxEvent(Base):
    """An event committed with its cause and not yet delivered to every subscriber."""

    __tablename__ = "bus_outbox"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    key: Mapped[str] = mapped_column(String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class ProcessedEvent(Base):
    """An event a durable subscriber has handled; a second delivery is skipped."""

    __tablename__ = "bus_processed"
    __table_args__ = (UniqueConstraint("subscriber", "event_id"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    subscriber: Mapped[str] = mapped_column(String(120))
    event_id: Mapped[str] = mapped_column(String(32))
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DeadLetter(Base):
    """An event a subscriber failed to handle after every retry, kept to inspect and replay."""

    __tablename__ = "bus_dead_letters"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    subscriber: Mapped[str] = mapped_column(String(120), index=True)
    event_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Copied from the event, so that an agency's administrators see only their own failures.
    organisation_id: Mapped[str | None] = mapped_column(String(32), index=True)


# Outbox rows are written with plain inserts: the ORM's bookkeeping of each row as an object
# cost more than the rest of publishing.
_OUTBOX = cast(Table, OutboxEvent.__table__)
_PENDING = "civic.bus.pending"
_BUFFER = "civic.bus.outbox"
_wakers: set[Callable[[], None]] = set()


async def publish(session: AsyncSession, event: Event) -> None:
    """Record event in the caller's transaction; it is delivered only if that commits."""
    await publish_all(session, [event])


async def publish_all(session: AsyncSession, events: Sequence[Event]) -> None:
    """Record several events, in order, in the caller's transaction."""
    if not session.in_transaction():
        await session.connection()  # begin it: the events belong to it, and end with it
    _buffer(session.sync_session, events)


def _buffer(session: Session, events: Sequence[Event]) -> None:
    # Rows wait in the session until commit (or a query) and are then written with one
    # statement; each remembers the (nested) transaction it was published in, so that rolling
    # back a savepoint forgets the events published inside it.
    owner = session.get_nested_transaction() or session.get_transaction()
    now = utcnow()
    rows: list[tuple[SessionTransaction | None, dict[str, Any]]] = session.info.setdefault(
        _BUFFER, []
    )
    for event_ in events:
        row = {
            "event_id": event_.event_id,
            "name": event_.name,
            "key": event_.key()[:120],
            "payload": event_.model_dump(mode="json"),
            "created_at": now,
            "attempts": 0,
        }
        rows.append((owner, row))
    if events:
        session.info[_PENDING] = True


def _write_buffer(session: Session) -> None:
    rows = session.info.pop(_BUFFER, None)
    if rows:
        session.execute(insert(_OUTBOX), [row for _, row in rows])


@event.listens_for(Session, "before_commit")
def _write_outbox_before_commit(session: Session) -> None:
    _write_buffer(session)


@event.listens_for(Session, "do_orm_execute")
def _write_outbox_before_queries(state: ORMExecuteState) -> None:
    # A query in the same transaction sees the events published before it, in order.
    if state.session.info.get(_BUFFER):
        _write_buffer(state.session)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    rows = session.info.get(_BUFFER)
    if not rows:
        return

    def inside(owner: SessionTransaction | None) -> bool:
        while owner is not None:
            if owner is previous:
                return True
            owner = owner.parent
        return previous.parent is None  # the whole transaction rolled back

    session.info[_BUFFER] = [(owner, row) for owner, row in rows if not inside(owner)]


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction_: SessionTransaction) -> None:
    if transaction_.parent is None:
        session.info.pop(_BUFFER, None)


@event.listens_for(Session, "after_commit")
def _wake_relays_after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        for wake in list(_wakers):
            wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def decode(name: str, payload: dict[str, Any]) -> Event:
    """Rebuild a typed event from its name and JSON payload."""
    kind = EVENT_TYPES.get(name)
    if kind is None:
        raise LookupError(f"unknown event type {name!r}")
    return kind.model_validate(payload)


@dataclass(frozen=True)
class Subscription:
    """A durable subscriber: a named handler of some event types."""

    name: str
    names: frozenset[str]
    handler: Handler


@dataclass
class RetryPolicy:
    """How often and how patiently a failing handler is retried before dead-lettering."""

    attempts: int = 5
    first_delay: float = 0.05
    factor: float = 4.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number attempt (1-based)."""
        return float(self.first_delay * self.factor ** (attempt - 1))


@dataclass
class Bus:
    """Subscribers of this process; the relay delivers the outbox to them."""

    subscriptions: list[Subscription] = field(default_factory=list)
    listeners: list[tuple[frozenset[str] | None, Listener]] = field(default_factory=list)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # A transport that keeps per-subscriber state at the broker (NATS) hears of late subscribers.
    watchers: list[Callable[[Subscription], None]] = field(default_factory=list, repr=False)

    def subscribe(self, *event_types: type[Event], handler: Handler, name: str) -> Subscription:
        """Handle these events durably, once each, in a transaction of their own."""
        if any(s.name == name for s in self.subscriptions):
            raise ValueError(f"a subscriber named {name!r} exists already")
        subscription = Subscription(name, frozenset(t.name for t in event_types), handler)
        self.subscriptions.append(subscription)
        for watcher in list(self.watchers):
            watcher(subscription)
        return subscription

    def listen(self, listener: Listener, *event_types: type[Event]) -> None:
        """Also tell listener (not durable: pushes to browsers) about events, all if none given."""
        names = frozenset(t.name for t in event_types) if event_types else None
        self.listeners.append((names, listener))

    def wants(self, name: str) -> list[Subscription]:
        """Return the durable subscribers of an event name."""
        return [s for s in self.subscriptions if name in s.names]

    def named(self, name: str) -> Subscription | None:
        """Return the durable subscriber called name in this process, if any."""
        return next((s for s in self.subscriptions if s.name == name), None)

    async def tell_listeners(self, event_: Event) -> None:
        """Tell the listeners of event_; one that fails is logged and the others still hear."""
        for names, listener in self.listeners:
            if names is None or event_.name in names:
                try:
                    await listener(event_)
                except Exception:
                    log.exception("listener_failed", event_name=event_.name)


def lane_of(key: str, lanes: int) -> int:
    """Return the delivery lane of a key: one key always takes the same lane."""
    return zlib.crc32(key.encode()) % lanes


def register_waker(wake: Callable[[], None]) -> Callable[[], None]:
    """Call wake after every commit that published; returns the function that unregisters."""
    _wakers.add(wake)
    return lambda: _wakers.discard(wake)


def wake_soon(loop: asyncio.AbstractEventLoop, flag: asyncio.Event) -> Callable[[], None]:
    """Return a waker that sets flag on loop, from any thread."""

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(flag.set)
        except RuntimeError:
            pass  # the loop closed: its relay stopped

    return wake
