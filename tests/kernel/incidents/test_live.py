"""Incidents on the live socket and on their pages."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import httpx

from civic.kernel.identity import Role
from tests.conftest import login
from tests.factories import PASSWORD
from tests.kernel.incidents.test_api import NEW
from tests.kernel.realtime.conftest import Served, make_person, open_live


async def test_incident_events_reach_the_board_and_the_incidents_own_topic(
    served: Served, client: httpx.AsyncClient
) -> None:
    dispatcher = await make_person(served.app, roles={"incidents": [Role.DISPATCHER]})
    stranger = await make_person(served.app, roles={"incidents": [Role.DISPATCHER]})
    board = await open_live(served, headers=dispatcher.bearer_header)
    elsewhere = await open_live(served, headers=stranger.bearer_header)
    for live in (board, elsewhere):
        assert (await live.subscribe("incidents"))["type"] == "subscribed"
    created = await client.post(
        "/api/incidents",
        json=NEW,
        headers=dispatcher.bearer_header | {"Idempotency-Key": uuid.uuid4().hex},
    )
    incident = created.json()
    message = await board.receive()
    assert message["topic"] == "incidents"
    assert message["data"]["event"] == "incidents.created"
    row = message["data"]["incident"]
    assert (row["id"], row["number"], row["status"], row["address"]) == (
        incident["id"],
        incident["number"],
        "received",
        NEW["address"],
    )
    assert "reporter_phone" not in str(message)
    own = f"incident:{incident['id']}"
    assert (await board.subscribe(own))["type"] == "subscribed"
    assert (await elsewhere.subscribe(own))["type"] == "subscribed"  # but sees nothing of it
    await client.post(
        f"/api/incidents/{incident['id']}/units",
        json={"unit_id": "amb-7", "name": "구급 7"},
        headers=dispatcher.bearer_header,
    )
    got = {(m := await board.receive())["topic"]: m["data"] for _ in range(2)}
    assert got["incidents"]["event"] == "incidents.dispatched"
    assert got[own]["status"] == "dispatched"
    assert "address" not in got[own]
    # The stranger's next message is a public one: nothing of the other agency came before it.
    served.hub.publish("incidents", {"public": True}, organisation_id=None)
    assert (await elsewhere.receive())["data"] == {"public": True}
    for live in (board, elsewhere):
        await live.connection.close()


async def test_a_status_link_follows_its_incident_live_and_on_its_page(
    served: Served, client: httpx.AsyncClient
) -> None:
    dispatcher = await make_person(served.app, roles={"incidents": [Role.DISPATCHER]})
    auth = dispatcher.bearer_header
    first = (
        await client.post(
            "/api/incidents", json=NEW, headers=auth | {"Idempotency-Key": "key-one-0001"}
        )
    ).json()
    second = (
        await client.post(
            "/api/incidents", json=NEW, headers=auth | {"Idempotency-Key": "key-two-0002"}
        )
    ).json()
    made = await client.post(f"/api/incidents/{first['id']}/status-link", headers=auth)
    assert made.status_code == 201
    link = made.json()
    assert parse_qs(urlsplit(link["url"]).query)["link"] == [link["token"]]
    page = await client.get("/incidents/status", params={"link": link["token"]})
    assert page.status_code == 200
    assert first["number"] in page.text and "접수" in page.text
    assert NEW["address"] not in page.text and NEW["reporter_phone"] not in page.text
    assert (await client.get("/incidents/status", params={"link": "bad"})).status_code == 403

    live = await open_live(served, query=f"?link={link['token']}", origin=served.origin)
    assert (await live.subscribe(f"incident:{first['id']}"))["type"] == "subscribed"
    for topic in (f"incident:{second['id']}", "incidents"):
        assert (await live.subscribe(topic))["status"] == 403
    await client.post(
        f"/api/incidents/{first['id']}/status", json={"status": "dispatched"}, headers=auth
    )
    update = await live.receive()
    assert update["data"]["status"] == "dispatched"
    assert set(update["data"]) == {"event", "incident_id", "number", "type", "status", "at"}
    await live.connection.close()


async def test_the_board_and_detail_pages_show_the_incidents(
    served: Served, client: httpx.AsyncClient
) -> None:
    dispatcher = await make_person(served.app, roles={"incidents": [Role.DISPATCHER]})
    incident = (
        await client.post(
            "/api/incidents",
            json=NEW,
            headers=dispatcher.bearer_header | {"Idempotency-Key": uuid.uuid4().hex},
        )
    ).json()
    assert (await client.get("/incidents/", headers={"accept": "text/html"})).status_code == 303
    await login(client, dispatcher.user.username, PASSWORD)
    board = await client.get("/incidents/", headers={"accept": "text/html"})
    assert board.status_code == 200
    assert "사건 현황판" in board.text and incident["number"] in board.text
    assert 'src="/static/civic-live.js"' in board.text
    assert NEW["reporter_phone"] not in board.text
    detail = await client.get(f"/incidents/{incident['id']}", headers={"accept": "text/html"})
    assert detail.status_code == 200
    assert "처리 경과" in detail.text and NEW["reporter_phone"] not in detail.text
    missing = await client.get("/incidents/nope", headers={"accept": "text/html"})
    assert missing.status_code == 404
    clerk = await make_person(served.app, roles={"parking": [Role.CLERK]})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=served.app), base_url="http://testserver"
    ) as other:
        await login(other, clerk.user.username, PASSWORD)
        assert (await other.get("/incidents/", headers={"accept": "text/html"})).status_code == 403
