"""Benchmark of the notification outbox: messages per second from `notify` to the dev inbox.

Three figures per database (SQLite, the embedded default; PostgreSQL when it answers on
localhost:5432), each over N messages, one transaction per message as a request would do it:

1. baseline: storing the finished message in the dev inbox table directly (one INSERT per
   transaction) — the floor the outbox path is measured against;
2. queue: `Notifier.notify` in its own transaction (preferences lookup, channel choice,
   template rendering, message and delivery rows);
3. deliver: the worker claiming, sending to the dev inbox and recording every delivery.

End to end is N over queue + deliver time. × is each rate against the baseline of the same run.
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from civic.kernel import migrations
from civic.kernel.db import create_engine, create_sessionmaker, transaction
from civic.kernel.notify import DevInboxMessage, Notifier, Recipient
from civic.kernel.runtime import Kernel
from civic.kernel.settings import NotifySettings
from civic.settings import Settings

MESSAGES = int(os.environ.get("CIVIC_BENCH_NOTIFY_MESSAGES", "600"))
POSTGRES_ADMIN_URL = os.environ.get(
    "CIVIC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
console = Console()


@dataclass(frozen=True)
class Rates:
    """Messages per second of each step on one database."""

    database: str
    baseline: float
    queue: float
    deliver: float
    end_to_end: float


async def baseline(kernel: Kernel) -> float:
    """Store N finished messages straight into the dev inbox table; return messages/s."""
    started = time.perf_counter()
    for number in range(MESSAGES):
        async with transaction(kernel.sessions) as session:
            session.add(
                DevInboxMessage(
                    delivery_id=uuid.uuid4().hex,
                    message_id=uuid.uuid4().hex,
                    channel="sms",
                    address=f"0105555{number:04d}",
                    template="generic",
                    urgency="normal",
                    title="",
                    body=f"[점검] {number}번 소화전 점검이 끝났습니다.",
                )
            )
    return MESSAGES / (time.perf_counter() - started)


async def through_the_outbox(kernel: Kernel) -> tuple[float, float, float]:
    """Queue N messages with notify, then let the worker deliver them; return three rates."""
    notifier = Notifier(NotifySettings(worker=False, channels=["sms"]), base_url="http://b")
    await notifier.start(kernel)
    try:
        started = time.perf_counter()
        for number in range(MESSAGES):
            async with transaction(kernel.sessions) as session:
                await notifier.notify(
                    session,
                    recipient=Recipient(phone=f"0106666{number:04d}"),
                    template="generic",
                    context={"title": "점검", "text": f"{number}번 소화전 점검이 끝났습니다."},
                )
        queued_s = time.perf_counter() - started
        started = time.perf_counter()
        delivered = 0
        while delivered < MESSAGES:
            sent = await notifier.deliver_due()
            if sent == 0:
                raise RuntimeError(f"only {delivered} of {MESSAGES} were due")
            delivered += sent
        delivered_s = time.perf_counter() - started
    finally:
        await notifier.stop()
    return MESSAGES / queued_s, MESSAGES / delivered_s, MESSAGES / (queued_s + delivered_s)


async def run_on(name: str, url: str) -> Rates:
    """Migrate a fresh database at url and measure it."""
    engine: AsyncEngine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        kernel = Kernel(settings=Settings(), engine=engine, sessions=create_sessionmaker(engine))
        floor = await baseline(kernel)
        queue, deliver, end_to_end = await through_the_outbox(kernel)
    finally:
        await engine.dispose()
    return Rates(name, floor, queue, deliver, end_to_end)


async def postgres_rates() -> Rates | None:
    """Measure on a throwaway PostgreSQL database, or return None when there is no server."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        console.print(f"[yellow]PostgreSQL skipped: {exc!r}[/yellow]")
        return None
    name = f"civic_bench_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        return await run_on("PostgreSQL", f"{base}/{name}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure() -> list[Rates]:
    """Measure on every database that is there."""
    results = []
    with tempfile.TemporaryDirectory(prefix="civic-bench-notify-") as temp:
        url = f"sqlite+aiosqlite:///{Path(temp) / 'civic.db'}"
        results.append(await run_on("SQLite", url))
    if (postgres := await postgres_rates()) is not None:
        results.append(postgres)
    return results


def report(results: list[Rates]) -> None:
    """Print the rates and their ratio to the baseline."""
    table = Table(
        title=f"Notifications to the dev inbox, {MESSAGES} messages, one transaction each",
        title_justify="left",
    )
    for column in ("database", "step", "messages/s", "×"):
        table.add_column(column, justify="left" if column in ("database", "step") else "right")
    for rates in results:
        steps = [
            ("baseline: INSERT into the inbox", rates.baseline),
            ("queue: notify() in a transaction", rates.queue),
            ("deliver: worker to the dev inbox", rates.deliver),
            ("[bold]end to end[/bold]", rates.end_to_end),
        ]
        for step, rate in steps:
            table.add_row(rates.database, step, f"{rate:,.0f}", f"{rate / rates.baseline:.2f}")
    console.print(table)
    console.print("× = rate against the baseline INSERT measured in the same run.")


def main() -> int:
    """Run the notification benchmark; return the exit status."""
    console.print(
        f"[bold]Civic notify benchmark[/bold] · Python {platform.python_version()} · "
        f"{platform.machine()} · {os.cpu_count()} CPUs"
    )
    report(asyncio.run(measure()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
