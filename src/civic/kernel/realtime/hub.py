"""The hub: topics, per-topic sequence numbers, replay buffers and the fan-out to connections."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from civic.kernel.bus import Event
from civic.kernel.identity import CitizenLinkScope, Principal, Role
from civic.kernel.settings import RealtimeSettings

if TYPE_CHECKING:
    from civic.kernel.realtime.connection import Connection
    from civic.kernel.realtime.fanout import NatsFanout
    from civic.kernel.runtime import Kernel

log = structlog.get_logger("civic.realtime")
TOPIC = re.compile(r"^[A-Za-z0-9_:.\-]{1,200}$")
E = TypeVar("E", bound=Event)


class TopicError(Exception):
    """A topic that may not be subscribed to; status says why, like an HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        """Describe the refusal."""
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return value.hex
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in a live message")


def encode(document: dict[str, Any]) -> str:
    """Return the JSON text of one frame sent to browsers."""
    return json.dumps(document, ensure_ascii=False, default=_jsonable, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Message:
    """One published message, encoded once and shared by every connection that receives it."""

    topic: str
    seq: int
    organisation_id: str | None
    droppable: bool
    at: float
    frame: str

    def visible_to(self, principal: Principal) -> bool:
        """Whether principal's organisation may see this message (None is public)."""
        return self.organisation_id is None or self.organisation_id == principal.organisation_id


@dataclass(frozen=True, slots=True)
class TopicRule:
    """Who may subscribe to topics starting with prefix."""

    prefix: str
    service: str
    roles: tuple[Role, ...]
    personal: bool


@dataclass
class TopicLog:
    """The last sequence number of a topic and the messages kept for resuming clients."""

    buffer: deque[Message]
    seq: int = 0

    def since(self, seq: int, *, max_age: float, now: float) -> list[Message] | None:
        """Messages after seq, or None when some of them are no longer kept."""
        if seq >= self.seq:
            return []
        kept = [m for m in self.buffer if m.seq > seq and now - m.at <= max_age]
        if not kept or kept[0].seq != seq + 1:
            return None
        return kept


@dataclass(frozen=True, slots=True)
class EventRoute:
    """How one event type becomes live messages: topic → data, and whether they may drop."""

    topics: Callable[[Any], Mapping[str, dict[str, Any]]]
    droppable: bool


@dataclass
class HubStats:
    """Counters of a hub, for health pages and benchmarks."""

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    slow_closed: int = 0
    malformed: int = 0


@dataclass(eq=False)
class Hub:
    """Kernel part that pushes live messages to the browsers allowed to see them."""

    settings: RealtimeSettings = field(default_factory=RealtimeSettings)
    name: str = "realtime"
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stats: HubStats = field(default_factory=HubStats)
    kernel: Kernel | None = None
    _rules: dict[str, TopicRule] = field(default_factory=dict)
    _link_topics: dict[str, str] = field(default_factory=dict)
    _routes: dict[str, list[EventRoute]] = field(default_factory=dict)
    _logs: dict[str, TopicLog] = field(default_factory=dict)
    _subscribers: dict[str, set[Connection]] = field(default_factory=dict)
    _connections: set[Connection] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: int | None = None
    _fanout: NatsFanout | None = None

    async def start(self, kernel: Kernel) -> None:
        """Listen to the bus on this loop, and join the other processes through NATS if set."""
        from civic.kernel.relay import OutboxRelay

        self.kernel = kernel
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        try:
            bus = kernel.part("bus", OutboxRelay).bus
        except LookupError:
            log.warning("realtime_without_bus")
        else:
            # A restarted app keeps its bus: listen once, or every event would arrive twice.
            if all(listener != self._on_event for _, listener in bus.listeners):
                bus.listen(self._on_event)
        url = self.settings.nats_url
        bus_url = kernel.settings.bus.url
        if url is None and bus_url is not None and bus_url.startswith(("nats://", "tls://")):
            url = bus_url  # processes that share a NATS bus share live messages too
        if url:
            from civic.kernel.realtime.fanout import NatsFanout

            fanout = NatsFanout(self, url)
            await fanout.start()
            self._fanout = fanout

    async def stop(self) -> None:
        """Close every connection (clients reconnect and resume elsewhere) and leave NATS."""
        for connection in list(self._connections):
            connection.close_soon(1001, "server stopping")
        if self._fanout is not None:
            await self._fanout.stop()
            self._fanout = None
        self._loop = None
        self._thread = None

    # -- what modules call -------------------------------------------------------------

    def register_topic(
        self, prefix: str, *, service: str, roles: tuple[Role, ...], personal: bool = False
    ) -> None:
        """Let principals with one of roles in service (or admins) subscribe to prefix*."""
        if not prefix or not TOPIC.match(prefix):
            raise ValueError(f"topic prefix {prefix!r} must match {TOPIC.pattern}")
        rule = TopicRule(prefix, service, tuple(roles), personal)
        known = self._rules.get(prefix)
        if known is not None and known != rule:
            raise ValueError(f"topic prefix {prefix!r} is registered already as {known}")
        self._rules[prefix] = rule

    def register_link_topic(self, purpose: str, template: str) -> None:
        """Let a citizen link of purpose subscribe to template.format(subject_id=...) only."""
        if "{subject_id}" not in template:
            raise ValueError("a link topic template must contain {subject_id}")
        self._link_topics[purpose] = template

    def route(
        self,
        event_type: type[E],
        topics: Callable[[E], Mapping[str, dict[str, Any]]],
        *,
        droppable: bool = False,
    ) -> None:
        """Push each committed event_type to the topics (and data) that topics(event) returns."""
        self._routes.setdefault(event_type.name, []).append(EventRoute(topics, droppable))

    def publish(
        self,
        topic: str,
        data: dict[str, Any],
        *,
        organisation_id: str | None,
        droppable: bool = False,
    ) -> None:
        """Send data to the topic's subscribers now, from any thread; never blocks."""
        if not TOPIC.match(topic):
            raise ValueError(f"topic {topic!r} must match {TOPIC.pattern}")
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread:
            try:
                loop.call_soon_threadsafe(
                    partial(
                        self.publish,
                        topic,
                        data,
                        organisation_id=organisation_id,
                        droppable=droppable,
                    )
                )
            except RuntimeError:
                pass  # the loop closed: nobody is connected any more
            return
        self.deliver(topic, data, organisation_id=organisation_id, droppable=droppable)
        if self._fanout is not None:
            self._fanout.send(topic, data, organisation_id=organisation_id, droppable=droppable)

    # -- delivery ----------------------------------------------------------------------

    def deliver(
        self,
        topic: str,
        data: dict[str, Any],
        *,
        organisation_id: str | None,
        droppable: bool,
    ) -> Message:
        """Give a message its number, keep it and hand it to local subscribers (loop only)."""
        topic_log = self._logs.get(topic)
        if topic_log is None:
            topic_log = TopicLog(deque(maxlen=self.settings.buffer_size))
            self._logs[topic] = topic_log
        topic_log.seq += 1
        seq = topic_log.seq
        frame = encode(
            {"type": "message", "topic": topic, "seq": seq, "epoch": self.epoch, "data": data}
        )
        message = Message(topic, seq, organisation_id, droppable, time.monotonic(), frame)
        topic_log.buffer.append(message)
        self.stats.published += 1
        # The hot loop of every fan-out: the organisation check inline, one offer each.
        for connection in self._subscribers.get(topic, ()):
            if organisation_id is None or connection.organisation_id == organisation_id:
                connection.offer(frame, droppable=droppable)
        return message

    async def _on_event(self, event: Event) -> None:
        for route in self._routes.get(event.name, ()):
            try:
                targets = route.topics(event)
            except Exception:
                log.exception("realtime_route_failed", event_name=event.name)
                continue
            # Events reach every process through the bus itself: no NATS fan-out here.
            for topic, data in targets.items():
                self.deliver(
                    topic, data, organisation_id=event.organisation_id, droppable=route.droppable
                )

    # -- subscriptions -----------------------------------------------------------------

    def rule_for(self, topic: str) -> TopicRule | None:
        """Return the registered rule with the longest prefix of topic."""
        best: TopicRule | None = None
        for prefix, rule in self._rules.items():
            if topic.startswith(prefix) and (best is None or len(prefix) > len(best.prefix)):
                best = rule
        return best

    def link_topic(self, scope: CitizenLinkScope) -> str | None:
        """Return the one topic a citizen link may follow, if its purpose has one."""
        template = self._link_topics.get(scope.purpose)
        return template.format(subject_id=scope.subject_id) if template else None

    def check(self, principal: Principal, topic: str) -> TopicRule:
        """Return the rule admitting principal to topic, or raise TopicError."""
        if not TOPIC.match(topic):
            raise TopicError(
                400, f"주제 이름이 올바르지 않습니다 (topic must match {TOPIC.pattern})."
            )
        rule = self.rule_for(topic)
        if rule is None:
            raise TopicError(404, f"'{topic}' 주제는 없습니다 (unknown topic).")
        if principal.link is not None:
            if self.link_topic(principal.link) != topic:
                raise TopicError(
                    403, "이 링크로는 볼 수 없는 주제입니다 (outside the link's scope)."
                )
            return rule
        if not principal.has_role(rule.service, *rule.roles):
            wanted = ", ".join(r.value for r in rule.roles) or Role.ADMIN.value
            raise TopicError(403, f"'{rule.service}'에서 다음 역할이 필요합니다: {wanted}.")
        return rule

    def attach(self, connection: Connection) -> None:
        """Count a new connection."""
        self._connections.add(connection)

    def detach(self, connection: Connection) -> None:
        """Forget a connection and all its subscriptions."""
        self._connections.discard(connection)
        for topic in list(connection.topics):
            self._unsubscribe(connection, topic)

    def subscribe(
        self, connection: Connection, topic: str, *, since: int | None, epoch: str | None
    ) -> None:
        """Subscribe a checked connection; replay what it missed or tell it to reset."""
        # No await in here: nothing can be published between the replay and the subscription.
        topic_log = self._logs.get(topic)
        last = topic_log.seq if topic_log else 0
        missed: list[Message] | None = []
        if since is not None:
            if epoch != self.epoch:
                missed = None if since > 0 or last > 0 else []
            elif topic_log is not None:
                missed = topic_log.since(
                    since, max_age=self.settings.buffer_seconds, now=time.monotonic()
                )
            elif since > 0:
                missed = None
        if missed is not None:
            missed = [m for m in missed if m.visible_to(connection.principal)]
        connection.topics.add(topic)
        self._subscribers.setdefault(topic, set()).add(connection)
        kind = "subscribed" if missed is not None else "reset"
        connection.offer(
            encode({"type": kind, "topic": topic, "seq": last, "epoch": self.epoch}),
            droppable=False,
        )
        for message in missed or ():
            connection.offer(message.frame, droppable=message.droppable, replayed=True)

    def unsubscribe(self, connection: Connection, topic: str) -> None:
        """Stop sending topic to connection."""
        self._unsubscribe(connection, topic)

    def _unsubscribe(self, connection: Connection, topic: str) -> None:
        connection.topics.discard(topic)
        subscribers = self._subscribers.get(topic)
        if subscribers is not None:
            subscribers.discard(connection)
            if not subscribers:
                del self._subscribers[topic]

    def last_seq(self, topic: str) -> int:
        """Return the last sequence number given on topic in this process."""
        topic_log = self._logs.get(topic)
        return topic_log.seq if topic_log else 0

    def connections(self) -> Iterable[Connection]:
        """Return the open connections."""
        return tuple(self._connections)


def realtime_of(kernel: Kernel) -> Hub:
    """Return the hub of a running kernel."""
    return kernel.part("realtime", Hub)
