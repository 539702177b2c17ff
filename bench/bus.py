"""Benchmark of the event bus: events per second end to end through the outbox.

Each path runs on a fresh, migrated SQLite file in a temporary folder (the embedded default).
The producer publishes events in transactions of 100 over 50 keys; one durable subscriber handles
each with a trivial write (a row in a tally table). The clock runs from the first publish until
the subscriber's last batch is committed:

1. the in-process bus (the default): `publish` per event, the handler adds an ORM row;
2. the same with `publish_all` per transaction;
3. the same with a handler that executes its INSERT itself (a round trip to SQLite per event);
4. NATS JetStream at nats://127.0.0.1:4222 when it is reachable (a stream of its own, deleted
   afterwards), otherwise "skipped: unreachable".

Baselines, measured in the same run on the same kind of database: the handler called directly
with a transaction per event (what a caller does without a bus: the ratio column), and with a
transaction per 100 events (no bus and no outbox: the floor). Each row also shows the process's
CPU time per event (all threads), which says what one free core gives when the machine is shared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import String, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from civic.app import create_app
from civic.kernel import migrations
from civic.kernel.bus import Event, publish, publish_all
from civic.kernel.db import create_engine, create_sessionmaker, transaction
from civic.kernel.logging import configure_logging
from civic.kernel.relay import bus_of
from civic.settings import Settings

EVENTS = int(os.environ.get("CIVIC_BENCH_BUS_EVENTS", "20000"))
BASELINE_EVENTS = int(os.environ.get("CIVIC_BENCH_BUS_BASELINE_EVENTS", "3000"))
NATS_EVENTS = int(os.environ.get("CIVIC_BENCH_BUS_NATS_EVENTS", "2000"))
PER_TRANSACTION = 100
KEYS = 50
NATS_URL = "nats://127.0.0.1:4222"
TARGET = 5000
console = Console(width=150)


class BenchBase(DeclarativeBase):
    pass


class Tally(BenchBase):
    """What the subscriber writes per event."""

    __tablename__ = "bench_bus_tally"

    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sensor: Mapped[str] = mapped_column(String(40))


class ReadingTaken(Event):
    """A sensor reading; one key per sensor."""

    name = "benchbus.reading_taken"
    sensor: str
    value: int

    def key(self) -> str:
        """Readings of one sensor stay in order."""
        return self.sensor


Handler = Callable[[AsyncSession, ReadingTaken], Awaitable[None]]


async def add_row(session: AsyncSession, event: ReadingTaken) -> None:
    """Write by adding an ORM object, flushed with the transaction."""
    session.add(Tally(event_id=event.event_id, sensor=event.sensor))


async def execute_insert(session: AsyncSession, event: ReadingTaken) -> None:
    """Write with a statement executed at once."""
    await session.execute(insert(Tally).values(event_id=event.event_id, sensor=event.sensor))


def readings(count: int) -> list[ReadingTaken]:
    """Make count events over KEYS sensors."""
    return [ReadingTaken(sensor=f"S-{i % KEYS}", value=i) for i in range(count)]


async def fresh_database(folder: Path) -> str:
    """Create and migrate a new SQLite file; return its URL."""
    url = f"sqlite+aiosqlite:///{folder / f'{uuid.uuid4().hex}.db'}"
    engine = create_engine(url)
    await migrations.upgrade(engine)
    async with engine.begin() as connection:
        await connection.run_sync(BenchBase.metadata.create_all)
    await engine.dispose()
    return url


@dataclass(frozen=True)
class Figure:
    """One measured path: events per second, and the process's CPU time per event."""

    label: str
    events: int
    per_second: float | None
    cpu_us: float | None = None
    note: str = ""


def quiet_logs() -> None:
    """Keep the relay's and the parts' informational logs out of the report."""
    configure_logging(json=True, level=logging.WARNING)


async def direct(label: str, url: str, handler: Handler, count: int, per_tx: int) -> Figure:
    """Call the handler without a bus, per_tx events per transaction."""
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    events = readings(count)
    cpu, started = time.process_time(), time.perf_counter()
    for start in range(0, count, per_tx):
        async with transaction(sessions) as session:
            for event in events[start : start + per_tx]:
                await handler(session, event)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await engine.dispose()
    return Figure(label, count, count / elapsed, cpu / count * 1e6)


async def through_bus(
    label: str,
    url: str,
    folder: Path,
    handler: Handler,
    count: int,
    bus: dict[str, object],
    *,
    together: bool = False,
    note: str = "",
) -> Figure:
    """Publish count events through the outbox to one durable subscriber.

    together: publish each transaction's events with one publish_all instead of publish each.
    The clock runs from the first publish until the subscriber's last batch is committed.
    """
    extra: dict[str, object] = (
        {"mqtt": {"embedded_port": 0}} if "mqtt" in Settings.model_fields else {}
    )
    settings = Settings(env="test", var_dir=folder, database={"url": url}, bus=bus, **extra)
    app = create_app(settings, services=[])
    quiet_logs()
    kernel = app.state.kernel
    handled = 0
    all_handled = asyncio.Event()

    async def counting(session: AsyncSession, event: ReadingTaken) -> None:
        nonlocal handled
        await handler(session, event)
        handled += 1
        if handled >= count:
            all_handled.set()

    async with app.router.lifespan_context(app):
        bus_of(kernel).subscribe(ReadingTaken, handler=counting, name="bench.tally")
        events = readings(count)
        cpu, started = time.process_time(), time.perf_counter()
        for start in range(0, count, PER_TRANSACTION):
            async with transaction(kernel.sessions) as session:
                chunk = events[start : start + PER_TRANSACTION]
                if together:
                    await publish_all(session, chunk)
                else:
                    for event in chunk:
                        await publish(session, event)
        await asyncio.wait_for(all_handled.wait(), timeout=300)
        while True:  # the last handler ran; its batch is committed once the tally has every row
            async with kernel.sessions() as session:
                stored = await session.scalar(select(func.count()).select_from(Tally))
            if stored == count:
                break
            await asyncio.sleep(0.001)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Figure(label, count, count / elapsed, cpu / count * 1e6, note)


def nats_reachable() -> bool:
    """Whether something listens on the NATS port."""
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=1):
            return True
    except OSError:
        return False


async def delete_stream(name: str) -> None:
    """Remove the benchmark's stream from the NATS server."""
    import nats

    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(name)
    finally:
        await client.close()


async def run(folder: Path) -> list[Figure]:
    """Measure every row of the report."""
    figures = [
        await direct(
            "baseline: handler called directly, a transaction per event",
            await fresh_database(folder),
            add_row,
            BASELINE_EVENTS,
            1,
        ),
        await direct(
            "floor: handler called directly, a transaction per 100 events",
            await fresh_database(folder),
            add_row,
            EVENTS,
            PER_TRANSACTION,
        ),
        await through_bus(
            "bus, in-process: publish each, handler adds an ORM row",
            await fresh_database(folder),
            folder,
            add_row,
            EVENTS,
            {},
            note="the default",
        ),
        await through_bus(
            "bus, in-process: publish_all per transaction",
            await fresh_database(folder),
            folder,
            add_row,
            EVENTS,
            {},
            together=True,
        ),
        await through_bus(
            "bus, in-process: handler executes an INSERT itself",
            await fresh_database(folder),
            folder,
            execute_insert,
            EVENTS,
            {},
            note="a round trip per event",
        ),
    ]
    if not nats_reachable():
        return [*figures, Figure("bus, NATS JetStream", 0, None, note="skipped: unreachable")]
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"BENCH_{tag}", f"bench{tag}.events"
    try:
        figures.append(
            await through_bus(
                "bus, NATS JetStream (SQLite, 1 lane)",
                await fresh_database(folder),
                folder,
                add_row,
                NATS_EVENTS,
                {"url": NATS_URL, "stream": stream, "subject_prefix": prefix},
                note="one message in flight per lane",
            )
        )
    finally:
        await delete_stream(stream)
    return figures


def report(figures: list[Figure], load: str) -> None:
    """Print the figures and their ratio to the per-event baseline."""
    baseline = figures[0].per_second or 1.0
    table = Table(
        title="Events end to end through the outbox (fresh, migrated SQLite file)",
        title_justify="left",
    )
    for column in ("path", "events", "events/s", "× baseline", "CPU µs/event", "note"):
        table.add_column(column, justify="left" if column in ("path", "note") else "right")
    for figure in figures:
        rate = figure.per_second
        table.add_row(
            figure.label,
            str(figure.events) if figure.events else "",
            f"{rate:,.0f}" if rate else "",
            f"{rate / baseline:.1f}" if rate else "",
            f"{figure.cpu_us:,.0f}" if figure.cpu_us else "",
            figure.note,
        )
    console.print(table)
    default = figures[2]
    rate = default.per_second or 0.0
    verdict = "[green]meets[/green]" if rate >= TARGET else "[red]misses[/red]"
    console.print(
        f"In-process default: {rate:,.0f} events/s, {verdict} the {TARGET:,} events/s target "
        f"(load average at start {load}). × = ratio to the per-event baseline of this run; CPU "
        f"is the process's (all threads), so 1e6 / CPU µs is the rate one free core could give."
    )


def main() -> int:
    """Run the bus benchmark; return the exit status."""
    console.print(
        f"[bold]Civic bus benchmark[/bold] · Python {platform.python_version()} · "
        f"{platform.machine()} · {os.cpu_count()} CPUs · {PER_TRANSACTION} events per publishing "
        f"transaction, {KEYS} keys"
    )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="civic-bench-bus-") as temp:
        try:
            figures = asyncio.run(run(Path(temp)))
        except (RuntimeError, TimeoutError) as exc:
            console.print(f"[red]benchmark failed:[/red] {exc!r}")
            return 1
    report(figures, load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
