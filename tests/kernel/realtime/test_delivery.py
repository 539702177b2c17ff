"""Delivery: backpressure, resuming from a sequence number, events from the bus, other threads."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest

from civic.app import create_app
from civic.kernel.bus import Event, publish
from civic.kernel.db import transaction
from civic.kernel.identity import Role
from civic.kernel.settings import RealtimeSettings
from civic.settings import Settings
from tests.kernel.realtime.conftest import LiveClient, Served, make_person, open_live, serve

QUEUE = 8
BUFFER = 20


class PumpStarted(Event):
    name = "testlive.pump_started"
    pump: str

    def key(self) -> str:
        return self.pump


@pytest.fixture
async def small(settings: Settings) -> AsyncIterator[Served]:
    """A platform whose connections queue 8 frames and whose topics keep 20 messages."""
    tuned = settings.model_copy(
        update={"realtime": RealtimeSettings(send_queue=QUEUE, buffer_size=BUFFER)}
    )
    application = create_app(tuned, services=[])
    async with application.router.lifespan_context(application):
        async for running in serve(application):
            running.hub.register_topic("pos", service="track", roles=(Role.DISPATCHER,))
            running.hub.register_topic("alarm", service="track", roles=(Role.DISPATCHER,))
            yield running


async def _client(served: Served, *topics: str) -> LiveClient:
    person = await make_person(served.app, roles={"track": [Role.DISPATCHER]})
    live = await open_live(served, headers=person.bearer_header)
    for topic in topics:
        assert (await live.subscribe(topic))["type"] == "subscribed"
    return live


async def test_a_full_queue_drops_the_oldest_positions_but_never_an_alarm(small: Served) -> None:
    live = await _client(small, "pos", "alarm")
    # No await between publishes: the sender cannot run, so the queue must give way here.
    for i in range(30):
        small.hub.publish("pos", {"i": i}, organisation_id=None, droppable=True)
        if i % 10 == 5:
            small.hub.publish("alarm", {"i": i}, organisation_id=None)
    received = [await live.receive() for _ in range(QUEUE)]
    alarms = [m["seq"] for m in received if m["topic"] == "alarm"]
    positions = [m["seq"] for m in received if m["topic"] == "pos"]
    assert alarms == [1, 2, 3]
    assert positions == [26, 27, 28, 29, 30]
    assert small.hub.stats.dropped == 25
    small.hub.publish("alarm", {"after": True}, organisation_id=None)
    assert (await live.receive())["seq"] == 4  # nothing else was waiting
    await live.connection.close()


async def test_a_client_too_slow_for_alarms_is_closed_and_resumes_without_loss(
    small: Served,
) -> None:
    person = await make_person(small.app, roles={"track": [Role.DISPATCHER]})
    live = await open_live(small, headers=person.bearer_header)
    subscribed = await live.subscribe("alarm")
    small.hub.publish("alarm", {"n": 1}, organisation_id=None)
    first = await live.receive()
    for n in range(2, 2 + QUEUE + 1):
        small.hub.publish("alarm", {"n": n}, organisation_id=None)
    assert await live.close_code() == 4008
    assert small.hub.stats.slow_closed == 1
    again = await open_live(small, headers=person.bearer_header)
    resumed = await again.subscribe("alarm", since=first["seq"], epoch=subscribed["epoch"])
    assert resumed["type"] == "subscribed"
    replayed = [(await again.receive())["data"]["n"] for _ in range(QUEUE + 1)]
    assert replayed == list(range(2, 2 + QUEUE + 1))
    await again.connection.close()


async def test_a_reconnecting_client_gets_what_it_missed_or_a_reset(small: Served) -> None:
    person = await make_person(small.app, roles={"track": [Role.DISPATCHER]})
    live = await open_live(small, headers=person.bearer_header)
    epoch = (await live.subscribe("alarm"))["epoch"]
    for n in range(3):
        small.hub.publish("alarm", {"n": n}, organisation_id=None)
    last = [await live.receive() for _ in range(3)][-1]["seq"]
    await live.connection.close()
    small.hub.publish("alarm", {"n": 3}, organisation_id=None)
    small.hub.publish("alarm", {"n": 4}, organisation_id=None)
    again = await open_live(small, headers=person.bearer_header)
    assert (await again.subscribe("alarm", since=last, epoch=epoch))["seq"] == 5
    assert [(await again.receive())["data"]["n"] for _ in range(2)] == [3, 4]
    # Up to date: nothing is replayed, and the next live message follows.
    assert (await again.subscribe("alarm", since=5, epoch=epoch))["type"] == "subscribed"
    small.hub.publish("alarm", {"n": 5}, organisation_id=None)
    assert (await again.receive())["seq"] == 6
    # Another process (or a restart) numbers differently: the client must reload.
    assert (await again.subscribe("alarm", since=6, epoch="elsewhere"))["type"] == "reset"
    # More missed than a topic keeps: reset, then live messages again.
    for batch in range(5):
        for n in range(5):
            small.hub.publish("alarm", {"n": batch * 5 + n}, organisation_id=None)
        for _ in range(5):
            await again.receive()
    reset = await again.subscribe("alarm", since=1, epoch=epoch)
    assert (reset["type"], reset["seq"]) == ("reset", 6 + 25)
    await again.connection.close()


async def test_replays_are_filtered_by_organisation(small: Served) -> None:
    first = await make_person(small.app, roles={"track": [Role.DISPATCHER]})
    second = await make_person(small.app, roles={"track": [Role.DISPATCHER]})
    epoch = small.hub.epoch
    small.hub.publish("alarm", {"who": "first"}, organisation_id=first.organisation.id)
    small.hub.publish("alarm", {"who": "second"}, organisation_id=second.organisation.id)
    small.hub.publish("alarm", {"who": "all"}, organisation_id=None)
    live = await open_live(small, headers=second.bearer_header)
    assert (await live.subscribe("alarm", since=0, epoch=epoch))["type"] == "subscribed"
    assert [(await live.receive())["data"]["who"] for _ in range(2)] == ["second", "all"]
    await live.connection.close()


async def test_committed_events_are_pushed_to_their_topics(small: Served) -> None:
    hub = small.hub
    hub.register_topic("pump:", service="track", roles=(Role.DISPATCHER,))
    hub.route(PumpStarted, lambda e: {"pos": {"pump": e.pump}, f"pump:{e.pump}": {"on": True}})
    person = await make_person(small.app, roles={"track": [Role.DISPATCHER]})
    live = await open_live(small, headers=person.bearer_header)
    for topic in ("pos", "pump:P-7"):
        assert (await live.subscribe(topic))["type"] == "subscribed"
    async with transaction(small.app.state.kernel.sessions) as session:
        await publish(session, PumpStarted(pump="P-7", organisation_id=person.organisation.id))
    got = {(m := await live.receive())["topic"]: m["data"] for _ in range(2)}
    assert got == {"pos": {"pump": "P-7"}, "pump:P-7": {"on": True}}
    other = await make_person(small.app, roles={"track": [Role.DISPATCHER]})
    elsewhere = await open_live(small, headers=other.bearer_header)
    assert (await elsewhere.subscribe("pos"))["type"] == "subscribed"
    async with transaction(small.app.state.kernel.sessions) as session:
        await publish(session, PumpStarted(pump="P-8", organisation_id=person.organisation.id))
    assert (await live.receive())["data"] == {"pump": "P-8"}
    hub.publish("pos", {"public": True}, organisation_id=None)
    assert (await elsewhere.receive())["data"] == {"public": True}  # P-8 was not theirs
    await live.connection.close()
    await elsewhere.connection.close()


async def test_publishing_from_another_thread_reaches_the_loop(small: Served) -> None:
    live = await _client(small, "pos")
    thread = threading.Thread(
        target=lambda: small.hub.publish(
            "pos", {"from": "mqtt thread"}, organisation_id=None, droppable=True
        )
    )
    thread.start()
    thread.join()
    assert (await live.receive())["data"] == {"from": "mqtt thread"}
    with pytest.raises(ValueError, match="topic"):
        small.hub.publish("bad topic", {}, organisation_id=None)
    await live.connection.close()
