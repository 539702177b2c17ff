"""Several processes: hubs share directly published messages through NATS core pub/sub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from civic.app import create_app
from civic.kernel.identity import Role
from civic.kernel.realtime import Hub
from civic.kernel.settings import RealtimeSettings
from civic.settings import Settings
from tests.conftest import need_server
from tests.kernel.realtime.conftest import Served, make_person, open_live, serve

NATS_URL = "nats://127.0.0.1:4222"


async def _need_nats() -> None:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", 4222)
    except OSError as exc:
        need_server("NATS on localhost:4222", repr(exc))
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def clustered(settings: Settings) -> AsyncIterator[tuple[Served, Hub]]:
    """A served platform, and a second hub standing for another process on the same NATS."""
    await _need_nats()
    tuned = settings.model_copy(update={"realtime": RealtimeSettings(nats_url=NATS_URL)})
    application = create_app(tuned, services=[])
    async with application.router.lifespan_context(application):
        async for running in serve(application):
            other = Hub(RealtimeSettings(nats_url=NATS_URL))
            await other.start(application.state.kernel)
            try:
                yield running, other
            finally:
                await other.stop()


async def test_a_message_published_in_another_process_reaches_this_ones_browsers(
    clustered: tuple[Served, Hub],
) -> None:
    served, other = clustered
    served.hub.register_topic("fleet", service="track", roles=(Role.DISPATCHER,))
    person = await make_person(served.app, roles={"track": [Role.DISPATCHER]})
    live = await open_live(served, headers=person.bearer_header)
    assert (await live.subscribe("fleet"))["type"] == "subscribed"
    other.publish(
        "fleet", {"unit": "구급1"}, organisation_id=person.organisation.id, droppable=True
    )
    other.publish("fleet", {"unit": "남의 차"}, organisation_id="another-org", droppable=True)
    other.publish("fleet", {"unit": "공용"}, organisation_id=None)
    first = await live.receive()
    second = await live.receive()
    assert [first["data"], second["data"]] == [{"unit": "구급1"}, {"unit": "공용"}]
    # Numbered by the hub that delivers it; its epoch tells clients which numbering it is.
    assert (first["seq"], first["epoch"]) == (1, served.hub.epoch)
    # A hub does not deliver its own message twice when it comes back from NATS.
    served.hub.publish("fleet", {"unit": "본서"}, organisation_id=None)
    other.publish("fleet", {"unit": "마지막"}, organisation_id=None)
    assert (await live.receive())["data"] == {"unit": "본서"}
    assert (await live.receive())["data"] == {"unit": "마지막"}
    await live.connection.close()
