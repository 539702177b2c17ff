from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.app import create_app
from civic.kernel.bus import DeadLetter, Event, OutboxEvent, RetryPolicy, publish
from civic.kernel.db import transaction
from civic.kernel.relay import OutboxRelay, bus_of
from civic.settings import Settings
from tests.waiting import eventually


class HydrantChecked(Event):
    name = "testbus.hydrant_checked"
    hydrant: str
    pressure_kpa: int

    def key(self) -> str:
        return self.hydrant


class NobodyListens(Event):
    name = "testbus.nobody_listened"


@pytest.fixture
async def bus_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, services=[])
    async with application.router.lifespan_context(application):
        yield application


def test_event_names_must_be_area_dot_past_tense() -> None:
    with pytest.raises(TypeError, match="area.past_tense"):

        class Bad(Event):
            name = "NotAName"


async def test_committed_events_reach_subscribers_in_order(bus_app: FastAPI) -> None:
    kernel = bus_app.state.kernel
    seen: list[tuple[str, int]] = []

    async def remember(session: AsyncSession, event: HydrantChecked) -> None:
        seen.append((event.hydrant, event.pressure_kpa))

    bus_of(kernel).subscribe(HydrantChecked, handler=remember, name="test.remember")
    async with transaction(kernel.sessions) as session:
        for pressure in (300, 310, 320):
            await publish(session, HydrantChecked(hydrant="H-1", pressure_kpa=pressure))
    await eventually(lambda: len(seen) == 3)
    assert seen == [("H-1", 300), ("H-1", 310), ("H-1", 320)]


async def test_a_rolled_back_transaction_publishes_nothing(bus_app: FastAPI) -> None:
    kernel = bus_app.state.kernel
    seen: list[str] = []

    async def remember(session: AsyncSession, event: HydrantChecked) -> None:
        seen.append(event.hydrant)

    bus_of(kernel).subscribe(HydrantChecked, handler=remember, name="test.rollback")
    with pytest.raises(RuntimeError):
        async with transaction(kernel.sessions) as session:
            await publish(session, HydrantChecked(hydrant="ghost", pressure_kpa=1))
            raise RuntimeError("the change failed")
    async with transaction(kernel.sessions) as session:
        await publish(session, HydrantChecked(hydrant="real", pressure_kpa=2))
    await eventually(lambda: "real" in seen)
    assert "ghost" not in seen
    async with kernel.sessions() as session:
        assert await session.scalar(select(OutboxEvent).where(OutboxEvent.key == "ghost")) is None


async def test_a_redelivered_event_is_handled_once(bus_app: FastAPI) -> None:
    kernel = bus_app.state.kernel
    relay = kernel.part("bus", OutboxRelay)
    seen: list[str] = []

    async def remember(session: AsyncSession, event: HydrantChecked) -> None:
        seen.append(event.event_id)

    relay.bus.subscribe(HydrantChecked, handler=remember, name="test.once")
    event = HydrantChecked(hydrant="H-2", pressure_kpa=250)
    async with transaction(kernel.sessions) as session:
        await publish(session, event)
    await eventually(lambda: len(seen) == 1)
    # As after a crash between handling and marking the outbox row delivered:
    async with transaction(kernel.sessions) as session:
        row = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.event_id == event.event_id)
        )
        row.published_at = None
    await relay.deliver_pending()
    assert seen == [event.event_id]


async def test_a_failing_handler_is_retried_then_dead_lettered(bus_app: FastAPI) -> None:
    kernel = bus_app.state.kernel
    bus = bus_of(kernel)
    bus.retry = RetryPolicy(attempts=3, first_delay=0.001)
    calls: list[int] = []
    after: list[str] = []

    async def broken(session: AsyncSession, event: HydrantChecked) -> None:
        calls.append(event.pressure_kpa)
        raise ValueError("sensor table missing")

    async def fine(session: AsyncSession, event: HydrantChecked) -> None:
        after.append(event.hydrant)

    bus.subscribe(HydrantChecked, handler=broken, name="test.broken")
    bus.subscribe(HydrantChecked, handler=fine, name="test.fine")
    event = HydrantChecked(hydrant="H-3", pressure_kpa=99)
    async with transaction(kernel.sessions) as session:
        await publish(session, event)
    await eventually(lambda: after == ["H-3"])
    assert calls == [99, 99, 99]
    async with kernel.sessions() as session:
        letter = await session.scalar(
            select(DeadLetter).where(DeadLetter.event_id == event.event_id)
        )
    assert letter.subscriber == "test.broken" and "sensor table missing" in letter.error


async def test_listeners_hear_events_that_no_one_subscribed(bus_app: FastAPI) -> None:
    kernel = bus_app.state.kernel
    heard: list[str] = []

    async def listener(event: Event) -> None:
        heard.append(event.name)

    bus_of(kernel).listen(listener, NobodyListens)
    async with transaction(kernel.sessions) as session:
        await publish(session, NobodyListens())
    await eventually(lambda: heard == ["testbus.nobody_listened"])
