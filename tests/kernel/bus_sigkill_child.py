"""Child process of the SIGKILL test: commits an event, then hangs while handling it.

Run as `python -m tests.kernel.bus_sigkill_child SETTINGS_PICKLE EVENT_ID`. It prints COMMITTED
once the publishing transaction committed and HANDLING once the relay hands the event to the
subscriber, whose handler then never returns: the test kills the process with SIGKILL there.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from civic.app import create_app
from civic.kernel.bus import Event, publish
from civic.kernel.db import transaction
from civic.kernel.relay import OutboxRelay
from civic.settings import Settings

SUBSCRIBER = "testkill.parcels"


class ParcelDelivered(Event):
    """The event the child commits."""

    name = "testkill.parcel_delivered"
    parcel: str

    def key(self) -> str:
        return self.parcel


async def main(settings: Settings, event_id: str) -> None:
    app = create_app(settings, services=[])

    async def hang(session: AsyncSession, event: ParcelDelivered) -> None:
        print("HANDLING", event.event_id, flush=True)
        await asyncio.Event().wait()

    app.state.kernel.part("bus", OutboxRelay).bus.subscribe(
        ParcelDelivered, handler=hang, name=SUBSCRIBER
    )
    async with app.router.lifespan_context(app):
        async with transaction(app.state.kernel.sessions) as session:
            await publish(session, ParcelDelivered(event_id=event_id, parcel="P-7"))
        print("COMMITTED", event_id, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    written_by_the_test = Path(sys.argv[1]).read_bytes()
    asyncio.run(main(pickle.loads(written_by_the_test), sys.argv[2]))  # noqa: S301
