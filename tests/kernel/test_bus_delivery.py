"""The in-process bus at scale: the outbox buffer, batches, lanes, failures and duplicates."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Integer, String, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from civic.app import create_app
from civic.kernel.bus import DeadLetter, Event, OutboxEvent, ProcessedEvent, publish, publish_all
from civic.kernel.db import create_engine, create_sessionmaker, new_id, transaction, utcnow
from civic.kernel.relay import OutboxRelay, bus_of, claim, outbox_backlog
from civic.kernel.settings import BusSettings
from civic.settings import Settings
from tests.waiting import eventually


class MeterRead(Event):
    name = "testbusd.meter_read"
    meter: str
    seq: int
    reading_id: str = ""

    def key(self) -> str:
        return self.meter


class ReadingBase(DeclarativeBase):
    pass


class Reading(ReadingBase):
    """A row a handler writes; its primary key lets a test make a flush fail."""

    __tablename__ = "test_bus_readings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    meter: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer, default=0)


async def until(check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    """Return once the database shows what check looks for (another task changes it)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - the state is in the database
            await asyncio.sleep(0.02)


def bus_settings(settings: Settings, **values: object) -> Settings:
    defaults: dict[str, object] = {"retry_attempts": 3, "retry_first_delay_seconds": 0.001}
    return settings.model_copy(update={"bus": BusSettings(**(defaults | values))})


@pytest.fixture
async def laned_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(bus_settings(settings, lanes=4), services=[])
    async with application.router.lifespan_context(application):
        async with application.state.kernel.engine.begin() as connection:
            await connection.run_sync(ReadingBase.metadata.create_all)
        yield application
        async with application.state.kernel.engine.begin() as connection:
            await connection.run_sync(ReadingBase.metadata.drop_all)


async def test_a_rolled_back_savepoint_forgets_its_events_and_queries_see_the_rest(
    laned_app: FastAPI,
) -> None:
    kernel = laned_app.state.kernel
    meter = new_id()
    async with transaction(kernel.sessions) as session:
        await publish(session, MeterRead(meter=meter, seq=1))
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await publish(session, MeterRead(meter=meter, seq=2))
                raise RuntimeError("the inner change failed")
        await publish_all(session, [MeterRead(meter=meter, seq=3), MeterRead(meter=meter, seq=4)])
        # A query in the transaction sees what was published before it, in order.
        seen = (
            await session.scalars(
                select(OutboxEvent.payload).where(OutboxEvent.key == meter).order_by(OutboxEvent.id)
            )
        ).all()
        assert [p["seq"] for p in seen] == [1, 3, 4]
        await publish(session, MeterRead(meter=meter, seq=5))
    async with kernel.sessions() as session:
        stored = (
            await session.scalars(
                select(OutboxEvent.payload).where(OutboxEvent.key == meter).order_by(OutboxEvent.id)
            )
        ).all()
    assert [p["seq"] for p in stored] == [1, 3, 4, 5]


async def test_each_key_keeps_its_order_across_lanes_even_when_a_handler_fails_once(
    laned_app: FastAPI,
) -> None:
    kernel = laned_app.state.kernel
    meters = [f"M-{new_id()[:6]}-{i}" for i in range(8)]
    out_of_order: list[tuple[str, int, int | None]] = []
    failed_once: set[str] = set()

    async def store_in_order(session: AsyncSession, event: MeterRead) -> None:
        if event.meter not in meters:
            return
        if event.seq == 7 and event.meter not in failed_once:
            failed_once.add(event.meter)
            raise ConnectionError("the meter registry blinked")
        # What this meter's handler wrote before (committed, or earlier in this transaction).
        previous = await session.scalar(
            select(func.max(Reading.seq)).where(Reading.meter == event.meter)
        )
        if event.seq != (-1 if previous is None else previous) + 1:
            out_of_order.append((event.meter, event.seq, previous))
        session.add(Reading(id=event.event_id, meter=event.meter, seq=event.seq))

    bus_of(kernel).subscribe(MeterRead, handler=store_in_order, name="testbusd.order")
    for start in range(0, 20, 5):
        async with transaction(kernel.sessions) as session:
            for seq in range(start, start + 5):
                for meter in meters:
                    await publish(session, MeterRead(meter=meter, seq=seq))

    async def stored() -> list[tuple[str, int]]:
        async with kernel.sessions() as session:
            rows = await session.execute(
                select(Reading.meter, Reading.seq).where(Reading.meter.in_(meters))
            )
            return [(meter, seq) for meter, seq in rows]

    async def all_stored() -> bool:
        return len(await stored()) == 8 * 20

    await until(all_stored)
    assert out_of_order == []
    assert sorted(await stored()) == sorted((m, seq) for m in meters for seq in range(20))
    assert failed_once == set(meters)


async def test_a_write_that_fails_at_flush_is_dead_lettered_alone(laned_app: FastAPI) -> None:
    kernel = laned_app.state.kernel
    meter = f"M-{new_id()[:8]}"

    async def store(session: AsyncSession, event: MeterRead) -> None:
        if event.meter != meter:
            return
        # The second event reuses the first one's row id: the batch fails only when flushed.
        session.add(Reading(id=event.reading_id, meter=event.meter, seq=event.seq))

    bus_of(kernel).subscribe(MeterRead, handler=store, name="testbusd.flush")
    duplicate = new_id()
    events = [
        MeterRead(meter=meter, seq=0, reading_id=new_id()),
        MeterRead(meter=meter, seq=1, reading_id=duplicate),
        MeterRead(meter=meter, seq=2, reading_id=duplicate),
        MeterRead(meter=meter, seq=3, reading_id=new_id()),
    ]
    async with transaction(kernel.sessions) as session:
        await publish_all(session, events)

    async def letters() -> list[DeadLetter]:
        async with kernel.sessions() as session:
            rows = await session.scalars(
                select(DeadLetter).where(DeadLetter.subscriber == "testbusd.flush")
            )
            return list(rows)

    async def processed() -> list[str]:
        async with kernel.sessions() as session:
            rows = await session.scalars(
                select(ProcessedEvent.event_id).where(ProcessedEvent.subscriber == "testbusd.flush")
            )
            return list(rows)

    async def settled() -> bool:
        return len(await processed()) == 3 and len(await letters()) == 1

    await until(settled)
    [letter] = await letters()
    assert letter.event_id == events[2].event_id and letter.attempts == 3
    assert "IntegrityError" in letter.error or "UniqueViolation" in letter.error
    assert set(await processed()) == {events[0].event_id, events[1].event_id, events[3].event_id}
    async with kernel.sessions() as session:
        rows = await session.execute(select(Reading.id, Reading.seq).where(Reading.meter == meter))
        stored = dict(rows.all())
    assert stored == {events[0].reading_id: 0, duplicate: 1, events[3].reading_id: 3}


async def test_a_batch_delivered_again_is_handled_once(laned_app: FastAPI) -> None:
    kernel = laned_app.state.kernel
    relay = kernel.part("bus", OutboxRelay)
    meter = f"M-{new_id()[:8]}"
    calls: list[str] = []

    async def count(session: AsyncSession, event: MeterRead) -> None:
        if event.meter == meter:
            calls.append(event.event_id)

    bus_of(kernel).subscribe(MeterRead, handler=count, name="testbusd.once")
    events = [MeterRead(meter=meter, seq=i) for i in range(30)]
    async with transaction(kernel.sessions) as session:
        await publish_all(session, events)
    await eventually(lambda: len(calls) == 30)
    # As after a crash between handling and marking the rows delivered:
    async with transaction(kernel.sessions) as session:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.key == meter).values(published_at=None)
        )
    while await relay.deliver_pending():
        pass
    assert sorted(calls) == sorted(e.event_id for e in events)


async def test_the_backlog_counts_what_waits(settings: Settings) -> None:
    engine = create_engine(settings.database.url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            before = await outbox_backlog(session)
            long_ago = utcnow() - timedelta(minutes=5)
            await session.execute(
                insert(OutboxEvent),
                [
                    {
                        "event_id": new_id(),
                        "name": "testbusd.waited",
                        "key": "k",
                        "payload": {},
                        "created_at": long_ago,
                        "attempts": 0,
                    }
                    for _ in range(2)
                ],
            )
            after = await outbox_backlog(session)
            await session.rollback()
    finally:
        await engine.dispose()
    assert after.count == before.count + 2
    assert after.oldest_at is not None and after.oldest_at <= long_ago


async def test_a_relay_skips_rows_another_holds_and_later_rows_of_their_keys(
    settings: Settings,
) -> None:
    if not settings.database.url.startswith("postgresql"):
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) are PostgreSQL's; SQLite runs one relay")
    engine = create_engine(settings.database.url)
    sessions = create_sessionmaker(engine)
    key, other = new_id(), new_id()
    first, unrelated, second = (
        MeterRead(meter=key, seq=1),
        MeterRead(meter=other, seq=1),
        MeterRead(meter=key, seq=2),
    )
    try:
        async with transaction(sessions) as session:
            await publish_all(session, [first, unrelated, second])
        async with sessions() as holder, sessions() as rival:
            # The holder is another process's relay in the middle of delivering `first`.
            await holder.execute(
                select(OutboxEvent.id)
                .where(OutboxEvent.event_id == first.event_id)
                .with_for_update()
            )
            claimed = {e.event_id for e in await claim(rival, limit=10_000)}
            assert unrelated.event_id in claimed
            assert first.event_id not in claimed and second.event_id not in claimed
            await rival.rollback()
            await holder.rollback()
            claimed = {e.event_id for e in await claim(rival, limit=10_000)}
            assert {first.event_id, second.event_id} <= claimed
            await rival.rollback()
    finally:
        async with transaction(sessions) as session:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.key.in_([key, other]))
                .values(published_at=utcnow())
            )
        await engine.dispose()
