"""The bus through NATS JetStream on localhost: durable consumers, order, retries, duplicates."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import nats
import pytest
from fastapi import FastAPI
from nats.js.errors import NotFoundError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from civic.app import create_app
from civic.kernel.bus import DeadLetter, Event, OutboxEvent, ProcessedEvent, lane_of, publish
from civic.kernel.bus_nats import NatsTransport, consumer_name
from civic.kernel.db import new_id, transaction
from civic.kernel.relay import OutboxRelay, bus_of
from civic.kernel.settings import BusSettings
from civic.settings import Settings
from tests.conftest import need_server
from tests.waiting import eventually

NATS_URL = "nats://127.0.0.1:4222"
LANES = 3


class PumpStarted(Event):
    name = "testbusn.pump_started"
    pump: str
    seq: int

    def key(self) -> str:
        return self.pump


@pytest.fixture
async def nats_settings(settings: Settings) -> AsyncIterator[Settings]:
    """Settings that put the bus on a stream of this test's own, deleted afterwards."""
    try:
        client = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means no server
        need_server("NATS with JetStream on 127.0.0.1:4222", repr(exc))
    tag = new_id()[:10]
    bus = BusSettings(
        url=NATS_URL,
        stream=f"CIVIC_TEST_{tag}",
        subject_prefix=f"test{tag}.events",
        lanes=LANES,
        retry_attempts=3,
        retry_first_delay_seconds=0.05,
    )
    try:
        yield settings.model_copy(update={"bus": bus})
    finally:
        with contextlib.suppress(NotFoundError):
            await client.jetstream().delete_stream(bus.stream)
        await client.close()


@pytest.fixture
async def nats_app(nats_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(nats_settings, services=[])
    async with application.router.lifespan_context(application):
        yield application


def transport_of(app: FastAPI) -> NatsTransport:
    transport = app.state.kernel.part("bus", OutboxRelay).transport
    assert isinstance(transport, NatsTransport)
    return transport


async def consumed(app: FastAPI, subscriber: str) -> bool:
    """Whether every lane consumer of subscriber has acknowledged all it was given."""
    transport = transport_of(app)
    for lane in range(LANES):
        info = await transport.js.consumer_info(transport.stream, consumer_name(subscriber, lane))
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def until(check: object, *, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not await check():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_events_reach_durable_subscribers_in_order_per_key_and_listeners(
    nats_app: FastAPI,
) -> None:
    kernel = nats_app.state.kernel
    pumps = [f"P-{i}" for i in range(6)]
    seen: dict[str, list[int]] = {p: [] for p in pumps}
    heard: list[str] = []

    async def remember(session: AsyncSession, event: PumpStarted) -> None:
        seen[event.pump].append(event.seq)

    async def listener(event: Event) -> None:
        heard.append(event.event_id)

    bus = bus_of(kernel)
    bus.subscribe(PumpStarted, handler=remember, name="testbusn.order")
    bus.listen(listener, PumpStarted)
    assert len({lane_of(p, LANES) for p in pumps}) > 1, "the keys should spread over lanes"
    for start in range(0, 15, 5):
        async with transaction(kernel.sessions) as session:
            for seq in range(start, start + 5):
                for pump in pumps:
                    await publish(session, PumpStarted(pump=pump, seq=seq))
    await eventually(lambda: all(len(v) == 15 for v in seen.values()), within=30)
    assert all(v == list(range(15)) for v in seen.values()), seen
    await eventually(lambda: len(heard) == 6 * 15, within=30)
    await until(lambda: consumed(nats_app, "testbusn.order"))
    transport = transport_of(nats_app)
    info = await transport.js.stream_info(transport.stream)
    assert info.state.messages == 6 * 15


async def test_a_rolled_back_transaction_publishes_nothing(nats_app: FastAPI) -> None:
    kernel = nats_app.state.kernel
    seen: list[str] = []

    async def remember(session: AsyncSession, event: PumpStarted) -> None:
        seen.append(event.pump)

    bus_of(kernel).subscribe(PumpStarted, handler=remember, name="testbusn.rollback")
    with pytest.raises(RuntimeError):
        async with transaction(kernel.sessions) as session:
            await publish(session, PumpStarted(pump="ghost", seq=1))
            raise RuntimeError("the change failed")
    async with transaction(kernel.sessions) as session:
        await publish(session, PumpStarted(pump="real", seq=1))
    await eventually(lambda: seen == ["real"], within=30)
    transport = transport_of(nats_app)
    info = await transport.js.stream_info(transport.stream)
    assert info.state.messages == 1


async def test_a_message_delivered_twice_is_handled_once(nats_app: FastAPI) -> None:
    kernel = nats_app.state.kernel
    relay = kernel.part("bus", OutboxRelay)
    transport = transport_of(nats_app)
    calls: list[str] = []

    async def count(session: AsyncSession, event: PumpStarted) -> None:
        calls.append(event.event_id)

    bus_of(kernel).subscribe(PumpStarted, handler=count, name="testbusn.once")
    event = PumpStarted(pump="P-dup", seq=1)
    async with transaction(kernel.sessions) as session:
        await publish(session, event)
    await eventually(lambda: calls == [event.event_id], within=30)

    # The relay sends it again (as after a crash before marking it): JetStream drops it.
    async with transaction(kernel.sessions) as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.event_id == event.event_id)
            .values(published_at=None)
        )
    while await relay.deliver_pending():
        pass
    # Past JetStream's de-duplication window a copy would be stored: the consumer skips it.
    lane = lane_of(event.key(), LANES)
    await transport.js.publish(
        f"{transport.prefix}.{event.name}.{lane}",
        json.dumps(event.model_dump(mode="json")).encode(),
        headers={"Nats-Msg-Id": f"{event.event_id}-copy"},
    )
    info = await transport.js.stream_info(transport.stream)
    assert info.state.messages == 2
    await until(lambda: consumed(nats_app, "testbusn.once"))
    assert calls == [event.event_id]
    async with kernel.sessions() as session:
        marks = await session.scalar(
            select(func.count())
            .select_from(ProcessedEvent)
            .where(ProcessedEvent.subscriber == "testbusn.once")
        )
    assert marks == 1


async def test_a_failing_handler_is_redelivered_then_dead_lettered_and_its_key_waits(
    nats_app: FastAPI,
) -> None:
    kernel = nats_app.state.kernel
    attempts: list[int] = []
    after: list[tuple[int, bool]] = []
    pump = f"P-{new_id()[:6]}"

    async def flaky(session: AsyncSession, event: PumpStarted) -> None:
        if event.seq == 1:
            attempts.append(event.seq)
            raise TimeoutError("the pump controller did not answer")
        # Per key order: the event behind the failing one waits until it is dead-lettered.
        letter = await session.scalar(
            select(DeadLetter.id).where(DeadLetter.subscriber == "testbusn.flaky")
        )
        after.append((event.seq, letter is not None))

    bus_of(kernel).subscribe(PumpStarted, handler=flaky, name="testbusn.flaky")
    async with transaction(kernel.sessions) as session:
        await publish(session, PumpStarted(pump=pump, seq=1))
        await publish(session, PumpStarted(pump=pump, seq=2))
    await eventually(lambda: after == [(2, True)], within=30)
    assert attempts == [1, 1, 1]
    async with kernel.sessions() as session:
        letter = await session.scalar(
            select(DeadLetter).where(DeadLetter.subscriber == "testbusn.flaky")
        )
    assert letter is not None and letter.attempts == 3 and "did not answer" in letter.error
    assert letter.payload["pump"] == pump


async def test_two_processes_share_the_work_of_a_durable_subscriber(
    nats_settings: Settings,
) -> None:
    first, second = (create_app(nats_settings, services=[]) for _ in range(2))
    handled: dict[str, list[str]] = {"first": [], "second": []}

    def handler_for(label: str):  # type: ignore[no-untyped-def]
        async def handle(session: AsyncSession, event: PumpStarted) -> None:
            handled[label].append(event.event_id)

        return handle

    async with (
        first.router.lifespan_context(first),
        second.router.lifespan_context(second),
    ):
        for label, app in (("first", first), ("second", second)):
            bus_of(app.state.kernel).subscribe(
                PumpStarted, handler=handler_for(label), name="testbusn.shared"
            )
        events = [PumpStarted(pump=f"P-{i % 7}", seq=i) for i in range(60)]
        async with transaction(first.state.kernel.sessions) as session:
            for event in events[:30]:
                await publish(session, event)
        async with transaction(second.state.kernel.sessions) as session:
            for event in events[30:]:
                await publish(session, event)
        await eventually(lambda: len(handled["first"]) + len(handled["second"]) >= 60, within=60)
        await until(lambda: consumed(first, "testbusn.shared"))
    assert sorted(handled["first"] + handled["second"]) == sorted(e.event_id for e in events)
