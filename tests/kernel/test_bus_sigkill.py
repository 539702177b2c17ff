"""A process killed with SIGKILL between commit and delivery loses no event."""

import asyncio
import pickle
import signal
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.app import create_app
from civic.kernel.bus import OutboxEvent, ProcessedEvent
from civic.kernel.db import new_id
from civic.kernel.relay import OutboxRelay
from civic.settings import Settings
from tests.kernel.bus_sigkill_child import SUBSCRIBER, ParcelDelivered
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


async def _read_until(stream: asyncio.StreamReader, marker: str, lines: list[str]) -> None:
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"the child ended before {marker}:\n{''.join(lines[-40:])}")
        lines.append(line)
        if line.startswith(marker):
            return


async def test_an_event_committed_before_sigkill_arrives_after_restart(
    settings: Settings, tmp_path: Path
) -> None:
    settings_file = tmp_path / "settings.pickle"
    settings_file.write_bytes(pickle.dumps(settings))
    event_id = new_id()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.kernel.bus_sigkill_child",
        str(settings_file),
        event_id,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            await _read_until(child.stdout, "COMMITTED", lines)
            # The relay has the event and the handler hangs: delivery has begun, not ended.
            await _read_until(child.stdout, "HANDLING", lines)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    app = create_app(settings, services=[])
    kernel = app.state.kernel
    async with kernel.sessions() as session:
        row = await session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))
    assert row is not None and row.published_at is None, "the event was committed, not delivered"

    delivered: list[ParcelDelivered] = []

    async def remember(session: AsyncSession, event: ParcelDelivered) -> None:
        delivered.append(event)

    # Subscribed before start, as services do: the relay finds the backlog at once.
    kernel.part("bus", OutboxRelay).bus.subscribe(
        ParcelDelivered, handler=remember, name=SUBSCRIBER
    )
    async with app.router.lifespan_context(app):
        await eventually(lambda: [e.event_id for e in delivered] == [event_id], within=30)

        async def marked() -> bool:
            async with kernel.sessions() as session:
                done = await session.scalar(
                    select(ProcessedEvent.id).where(
                        ProcessedEvent.subscriber == SUBSCRIBER,
                        ProcessedEvent.event_id == event_id,
                    )
                )
            return done is not None

        async with asyncio.timeout(30):
            while not await marked():  # noqa: ASYNC110 - the state is in the database
                await asyncio.sleep(0.02)
    assert delivered[0].parcel == "P-7"
