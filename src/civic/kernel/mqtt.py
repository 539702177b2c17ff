"""MQTT: one client per process that routes topics to handlers, and an embedded broker.

When `mqtt.url` is unset the part starts an amqtt broker inside the process (the `make run`
default); with a URL it connects to that broker (Mosquitto in CI and production). The client
is aiomqtt (paho underneath): paho's protocol handling is mature and fast, and aiomqtt gives
it an asyncio face; amqtt's own client is slower and less battle-tested, so amqtt only serves
as the embedded broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import structlog

from civic.kernel.runtime import Kernel
from civic.kernel.settings import MqttSettings

log = structlog.get_logger("civic.mqtt")
MessageHandler = Callable[[str, bytes], Awaitable[None]]
_MAX_BACKOFF = 30.0
# The session is clean, so a QoS 1 subscription would add nothing a TCP connection does not
# already give (the broker forgets unacknowledged messages when we disconnect) while costing a
# PUBACK per message and, on Mosquitto, a window of 20 in flight and 1,000 queued before it
# drops messages for a subscriber that falls behind. At QoS 0 the broker streams to us and TCP
# carries the back-pressure. Devices still publish to the broker with QoS 1.
SUBSCRIBE_QOS = 0
_YIELD_EVERY = 100
_TOPIC_CACHE = 100_000  # topics whose handlers are remembered (one per device and leaf)

__all__ = [
    "MessageHandler",
    "MqttPart",
    "MqttSettings",
    "MqttUnavailable",
    "covers",
    "matches",
    "mqtt_of",
]


class MqttUnavailable(RuntimeError):
    """The broker cannot be reached now; the part keeps reconnecting."""


def matches(topic_filter: str, topic: str) -> bool:
    """Whether topic matches an MQTT filter with + (one level) and # (the rest) wildcards."""
    want = topic_filter.split("/")
    have = topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return not (index == 0 and have[0].startswith("$"))
        if index >= len(have):
            return False
        if level == "+":
            if index == 0 and have[0].startswith("$"):
                return False
            continue
        if level != have[index]:
            return False
    return len(want) == len(have)


def covers(wide: str, narrow: str) -> bool:
    """Whether every topic that narrow matches is matched by the filter wide too."""
    a, b = wide.split("/"), narrow.split("/")
    for index, level in enumerate(a):
        if level == "#":
            return True
        if index >= len(b) or b[index] == "#":
            return False
        if level != "+" and (b[index] == "+" or level != b[index]):
            return False
    return len(a) == len(b)


def broker_filters(filters: list[str]) -> list[str]:
    """Return the filters to subscribe at the broker: none covered by another one."""
    unique = list(dict.fromkeys(filters))
    return [f for f in unique if not any(o != f and covers(o, f) for o in unique)]


@dataclass
class MqttStats:
    """Counters of this process's MQTT traffic."""

    received: int = 0
    unrouted: int = 0
    handler_failures: int = 0
    published: int = 0
    connects: int = 0


@dataclass(frozen=True)
class _Broker:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def _parse_url(url: str) -> _Broker:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, not {url!r}")
    tls = parts.scheme == "mqtts"
    return _Broker(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        username=parts.username,
        password=parts.password,
        tls=tls,
    )


class _ReadAheadSocket:
    """paho's socket with a read-ahead buffer: one recv serves many packets.

    paho reads a packet with several small recv calls and aiomqtt wakes it once per packet;
    at thousands of messages a second that costs more than the rest of the pipeline. Buffered
    bytes are reported by `pending()`, which aiomqtt's reader already polls (for TLS sockets),
    so it keeps reading until the buffer is empty.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._offset = 0
        self._refilled = False

    def _allow_refill(self) -> None:
        self._refilled = False

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._buffer):
            if self._refilled:
                # One socket read per turn of the event loop: a steady stream must not keep
                # the reader in one callback while every other task waits.
                raise BlockingIOError
            data: bytes = self._sock.recv(max(size, 65_536))
            self._refilled = True
            asyncio.get_running_loop().call_soon(self._allow_refill)
            if len(data) <= size:
                return data
            self._buffer, self._offset = data, 0
        chunk = self._buffer[self._offset : self._offset + size]
        self._offset += len(chunk)
        return chunk

    def pending(self) -> int:
        return len(self._buffer) - self._offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class MqttPart:
    """Kernel part: an MQTT connection that reconnects, routes messages and publishes."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, *, wait_seconds: float = 5.0) -> None:
        """Prepare the part; start and publish wait up to wait_seconds for a connection."""
        self.settings = settings
        self.wait_seconds = wait_seconds
        self.stats = MqttStats()
        self._routes: list[tuple[str, MessageHandler]] = []
        self._by_topic: dict[str, list[tuple[str, MessageHandler]]] = {}
        self._url: str | None = settings.url
        self._broker: Any = None
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        """The broker URL actually used (the embedded one once started)."""
        if self._url is None:
            raise MqttUnavailable("the MQTT part has not started its embedded broker yet")
        return self._url

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the broker now."""
        return self._connected.is_set()

    def route(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call handler(topic, payload) for messages matching filter; subscribes when connected."""
        aiomqtt.Wildcard(topic_filter)  # refuse a malformed filter here, not at subscribe time
        # Overlapping subscriptions make some brokers deliver a message twice; messages are
        # routed here, so the broker gets only the widest filters.
        before = broker_filters([f for f, _ in self._routes])
        self._routes.append((topic_filter, handler))
        self._by_topic.clear()
        after = broker_filters([f for f, _ in self._routes])
        client = self._client
        if client is not None and self.connected and after != before:
            self._spawn(self._resubscribe(client, before, after))

    async def _resubscribe(
        self, client: aiomqtt.Client, before: list[str], after: list[str]
    ) -> None:
        for topic_filter in after:
            if topic_filter not in before:
                await client.subscribe(topic_filter, qos=SUBSCRIBE_QOS)
        for topic_filter in before:
            if topic_filter not in after:
                await client.unsubscribe(topic_filter)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish a message; waits briefly for a connection, else raises MqttUnavailable."""
        client = self._client
        if client is None or not self.connected:
            try:
                await asyncio.wait_for(self._connected.wait(), timeout=self.wait_seconds)
            except TimeoutError as exc:
                raise MqttUnavailable(f"no connection to the MQTT broker at {self._url}") from exc
            client = self._client
            assert client is not None  # noqa: S101 - set before the event
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise MqttUnavailable(f"publishing to {topic} failed: {exc}") from exc
        self.stats.published += 1

    async def start(self, kernel: Kernel) -> None:
        """Start the embedded broker if no URL is set, then connect (in the background)."""
        if self.settings.url is None:
            await self._start_embedded_broker()
        self._connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="civic-mqtt-client")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=self.wait_seconds)
        if not self.connected:
            log.warning("mqtt_not_connected_yet", url=self._url)

    async def stop(self) -> None:
        """Disconnect and stop the embedded broker."""
        for task in list(self._pending):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
            self._url = None

    async def _start_embedded_broker(self) -> None:
        from amqtt.broker import Broker  # type: ignore[import-untyped]

        # amqtt logs every packet at INFO; its warnings are what matters here.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        host, port = self.settings.embedded_host, self.settings.embedded_port
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {}},
        }
        broker = Broker(config)
        try:
            await broker.start()
        except Exception as exc:
            raise MqttUnavailable(
                f"the embedded MQTT broker cannot listen on {host}:{port} ({exc}); "
                "set CIVIC_MQTT__URL to use a running broker or choose another port"
            ) from exc
        self._broker = broker
        server = broker._servers["default"].instance  # noqa: SLF001 - the only way to a port 0
        bound = server.sockets[0].getsockname()[1] if port == 0 else port
        self._url = f"mqtt://{host}:{bound}"
        log.info("mqtt_embedded_broker_started", url=self._url)

    async def _run(self) -> None:
        broker = _parse_url(self.url)
        backoff = 0.25
        while True:
            connects = self.stats.connects
            try:
                await self._session(broker)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt_disconnected", url=self._url, error=str(exc))
            finally:
                self._client = None
                self._connected.clear()
            # Back off while the broker stays away; start over once a connection has worked.
            backoff = 0.25 if self.stats.connects > connects else min(backoff * 2, _MAX_BACKOFF)
            await asyncio.sleep(backoff)

    async def _session(self, broker: _Broker) -> None:
        client_id = f"{self.settings.client_id_prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        inboxes: list[asyncio.Queue[aiomqtt.Message]] = []

        class Inbox(asyncio.Queue[aiomqtt.Message]):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                inboxes.append(self)

        async with aiomqtt.Client(
            broker.host,
            broker.port,
            queue_type=Inbox,
            identifier=client_id,
            username=broker.username,
            password=broker.password,
            tls_context=ssl.create_default_context() if broker.tls else None,
            keepalive=30,
        ) as client:
            # Private attributes of aiomqtt and paho: when they change, reading stays correct,
            # only slower (see _ReadAheadSocket).
            paho = getattr(client, "_client", None)
            if not broker.tls and isinstance(getattr(paho, "_sock", None), socket.socket):
                paho._sock = _ReadAheadSocket(paho._sock)  # type: ignore[union-attr]  # noqa: SLF001
            for topic_filter in broker_filters([f for f, _ in self._routes]):
                await client.subscribe(topic_filter, qos=SUBSCRIBE_QOS)
            self._client = client
            self.stats.connects += 1
            self._connected.set()
            log.info("mqtt_connected", url=self._url, client_id=client_id)
            inbox, messages = inboxes[0], aiomqtt.MessagesIterator(client)
            taken = 0
            while True:
                # Waiting through the iterator notices a lost connection, but costs a task per
                # message; while messages are queued they are taken straight from the inbox,
                # letting other tasks (the telemetry writer) run every so often.
                try:
                    message = inbox.get_nowait()
                    taken += 1
                    if taken % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                except asyncio.QueueEmpty:
                    message = await anext(messages)
                payload = message.payload
                data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                await self._dispatch(message.topic.value, data)

    def _handlers_of(self, topic: str) -> list[tuple[str, MessageHandler]]:
        handlers = self._by_topic.get(topic)
        if handlers is None:
            if len(self._by_topic) >= _TOPIC_CACHE:
                self._by_topic.clear()
            handlers = [(f, h) for f, h in self._routes if matches(f, topic)]
            self._by_topic[topic] = handlers
        return handlers

    async def _dispatch(self, topic: str, payload: bytes) -> None:
        self.stats.received += 1
        handlers = self._handlers_of(topic)
        if not handlers:
            self.stats.unrouted += 1
        for topic_filter, handler in handlers:
            try:
                await handler(topic, payload)
            except Exception:
                # One bad message or handler must never stop the others from being read.
                self.stats.handler_failures += 1
                log.exception("mqtt_handler_failed", topic=topic, filter=topic_filter)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("mqtt_subscribe_failed", error=repr(task.exception()))


def mqtt_of(kernel: Kernel) -> MqttPart:
    """Return the MQTT part of a running kernel."""
    return kernel.part("mqtt", MqttPart)
