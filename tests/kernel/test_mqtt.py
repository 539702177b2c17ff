from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from civic.kernel.mqtt import MqttPart, MqttSettings, broker_filters, covers, matches, mqtt_of
from civic.kernel.runtime import Kernel
from tests.conftest import need_server
from tests.waiting import eventually

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"


def _mosquitto_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("civic/+/+/+/telemetry", "civic/org/hydrant/h1/telemetry", True),
        ("civic/+/+/+/telemetry", "civic/org/hydrant/h1/commands", False),
        ("civic/#", "civic/org/hydrant/h1/commands/ack", True),
        ("civic/#", "civic", True),
        ("#", "$SYS/broker/uptime", False),
        ("civic/+", "civic/a/b", False),
        ("civic/a", "civic/a", True),
    ],
)
def test_filters_match_like_a_broker(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


@contextlib.asynccontextmanager
async def _started(app: FastAPI, url: str | None) -> AsyncIterator[MqttPart]:
    kernel: Kernel = app.state.kernel
    part = MqttPart(MqttSettings(url=url, embedded_port=0))
    await part.start(kernel)
    try:
        yield part
    finally:
        await part.stop()


@pytest.fixture(params=["embedded", "mosquitto"])
async def part(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[MqttPart]:
    if request.param == "mosquitto" and not _mosquitto_reachable():
        need_server("Mosquitto on localhost:1883", "connection refused")
    url = MOSQUITTO_URL if request.param == "mosquitto" else None
    async with _started(app, url) as started:
        yield started


async def test_the_app_runs_an_embedded_broker(app: FastAPI) -> None:
    part = mqtt_of(app.state.kernel)
    assert part.connected
    assert part.url.startswith("mqtt://127.0.0.1:")
    got: list[tuple[str, bytes]] = []

    async def remember(topic: str, payload: bytes) -> None:
        got.append((topic, payload))

    part.route("test/app/+", remember)  # routed after start: subscribes at once
    await eventually(lambda: part._pending == set())
    await part.publish("test/app/one", b"hello")
    await eventually(lambda: got == [("test/app/one", b"hello")])


async def test_routes_messages_and_survives_a_failing_handler(part: MqttPart) -> None:
    prefix = f"test/{id(part)}"
    got: list[tuple[str, bytes]] = []

    async def remember(topic: str, payload: bytes) -> None:
        got.append((topic, payload))

    async def explode(topic: str, payload: bytes) -> None:
        raise ValueError("handler bug")

    part.route(f"{prefix}/+/telemetry", explode)
    part.route(f"{prefix}/#", remember)
    await eventually(lambda: part._pending == set())
    for n in range(3):
        await part.publish(f"{prefix}/d{n}/telemetry", str(n).encode())
    await eventually(lambda: len(got) == 3)
    assert [payload for _, payload in got] == [b"0", b"1", b"2"]
    assert part.stats.handler_failures == 3


async def test_reconnects_when_the_broker_comes_back(app: FastAPI) -> None:
    # A second part connects to the first part's embedded broker, which is then restarted.
    async with _started(app, None) as broker:
        port = int(broker.url.rsplit(":", 1)[1])
        client = MqttPart(MqttSettings(url=broker.url))
        got: list[bytes] = []

        async def remember(topic: str, payload: bytes) -> None:
            got.append(payload)

        client.route("test/reconnect", remember)
        await client.start(app.state.kernel)
        try:
            await broker.stop()
            await eventually(lambda: not client.connected)
            broker.settings = MqttSettings(embedded_port=port)
            await broker.start(app.state.kernel)
            await eventually(lambda: client.connected, within=10)
            await broker.publish("test/reconnect", b"again")
            await eventually(lambda: got == [b"again"])
            assert client.stats.connects == 2
        finally:
            await client.stop()


async def test_publish_without_a_broker_fails_clearly(app: FastAPI) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    part = MqttPart(MqttSettings(url=f"mqtt://127.0.0.1:{free_port}"), wait_seconds=0.2)
    await part.start(app.state.kernel)
    try:
        assert not part.connected
        with pytest.raises(RuntimeError, match="no connection"):
            await part.publish("test/nowhere", b"x")
    finally:
        await part.stop()
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("wide", "narrow", "expected"),
    [
        ("a/#", "a/+/telemetry", True),
        ("a/+/telemetry", "a/#", False),
        ("a/+/c", "a/b/c", True),
        ("a/b/c", "a/+/c", False),
        ("#", "a", True),
        ("a/+", "a/b/c", False),
    ],
)
def test_only_the_widest_filters_reach_the_broker(wide: str, narrow: str, expected: bool) -> None:
    assert covers(wide, narrow) is expected
    if expected:
        assert broker_filters([narrow, wide, narrow]) == [wide]


async def test_a_burst_arrives_whole_and_in_order(part: MqttPart) -> None:
    # Thousands of messages in a few large TCP reads: packets split across reads must survive.
    assert type(part._client._client._sock).__name__ == "_ReadAheadSocket"  # type: ignore[union-attr]
    prefix = f"test/burst/{id(part)}"
    got: list[bytes] = []

    async def remember(topic: str, payload: bytes) -> None:
        got.append(payload)

    part.route(f"{prefix}/#", remember)
    await eventually(lambda: part._pending == set())
    sent = [(f"{n:05d}-" + "x" * (n % 700)).encode() for n in range(3000)]
    await asyncio.gather(*(part.publish(f"{prefix}/{n % 7}", p, qos=0) for n, p in enumerate(sent)))
    await eventually(lambda: len(got) == len(sent), within=20)
    assert got == sent
