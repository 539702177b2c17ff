"""The incidents API: idempotent creation, roles, organisation scoping, audited reporter reads."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from civic.kernel.audit import AuditEntry
from civic.kernel.bus import OutboxEvent
from civic.kernel.identity import Role
from tests.conftest import csrf_from, login
from tests.factories import PASSWORD
from tests.kernel.realtime.conftest import Person, make_person

NEW = {
    "type": "fire",
    "subtype": "주택 화재",
    "location": {"latitude": 37.5172, "longitude": 126.8664},
    "address": "서울 양천구 목동동로 105",
    "description": "2층 주택에서 연기",
    "reporter_name": "김신고",
    "reporter_phone": "010-9876-5432",
}


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def _create(
    client: httpx.AsyncClient, person: Person, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    answer = await client.post(
        "/api/incidents", json=body or NEW, headers=person.bearer_header | key()
    )
    assert answer.status_code == 201, answer.text
    document: dict[str, Any] = answer.json()
    return document


@pytest.fixture
async def dispatcher(app: FastAPI) -> Person:
    return await make_person(app, roles={"incidents": [Role.DISPATCHER]})


async def test_creating_twice_with_one_key_returns_the_same_incident(
    client: httpx.AsyncClient, dispatcher: Person, app: FastAPI
) -> None:
    headers = dispatcher.bearer_header | key()
    first = await client.post("/api/incidents", json=NEW, headers=headers)
    again = await client.post("/api/incidents", json=NEW, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    body = first.json()
    assert re.fullmatch(r"20\d\d-\d{6}", body["number"])
    assert (body["status"], body["type"], body["has_reporter_contact"]) == (
        "received",
        "fire",
        True,
    )
    assert "reporter_phone" not in body and "reporter_name" not in body
    assert [e["status"] for e in body["timeline"]] == ["received"]
    other = await client.post(
        "/api/incidents", json=NEW | {"description": "다른 신고"}, headers=headers
    )
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    async with app.state.kernel.sessions() as session:
        created = (
            await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.name == "incidents.created", OutboxEvent.key == body["id"]
                )
            )
        ).all()
    assert len(created) == 1


async def test_numbers_count_up_per_organisation(
    client: httpx.AsyncClient, dispatcher: Person, app: FastAPI
) -> None:
    numbers = [(await _create(client, dispatcher))["number"] for _ in range(3)]
    serials = [int(n.split("-")[1]) for n in numbers]
    assert serials == [serials[0], serials[0] + 1, serials[0] + 2]
    elsewhere = await make_person(app, roles={"incidents": [Role.DISPATCHER]})
    assert (await _create(client, elsewhere))["number"].endswith("-000001")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"type": "flood"}, "type"),
        (NEW | {"location": {"latitude": 91, "longitude": 127}}, "latitude"),
        (NEW | {"location": {"latitude": 37.5}}, "longitude"),
        (NEW | {"reporter_phone": "call me maybe"}, "reporter_phone"),
        (NEW | {"colour": "red"}, "colour"),
        (NEW | {"address": "x" * 301}, "address"),
    ],
)
async def test_invalid_incidents_are_refused_with_a_problem(
    client: httpx.AsyncClient, dispatcher: Person, body: dict[str, Any], where: str
) -> None:
    answer = await client.post(
        "/api/incidents", json=body, headers=dispatcher.bearer_header | key()
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert where in answer.text


async def test_creating_needs_a_sane_idempotency_key(
    client: httpx.AsyncClient, dispatcher: Person
) -> None:
    missing = await client.post("/api/incidents", json=NEW, headers=dispatcher.bearer_header)
    assert missing.status_code == 422 and "Idempotency-Key" in missing.text
    odd = await client.post(
        "/api/incidents", json=NEW, headers=dispatcher.bearer_header | {"Idempotency-Key": "a b"}
    )
    assert odd.status_code == 422


async def test_roles_decide_who_creates_reads_and_sees_the_reporter(
    client: httpx.AsyncClient, dispatcher: Person, app: FastAPI
) -> None:
    incident = await _create(client, dispatcher)
    crew = await make_person(
        app, roles={"incidents": [Role.CREW]}, organisation=dispatcher.organisation
    )
    clerk = await make_person(
        app, roles={"parking": [Role.CLERK]}, organisation=dispatcher.organisation
    )
    path = f"/api/incidents/{incident['id']}"
    assert (await client.get(path, headers=crew.bearer_header)).status_code == 200
    assert (await client.get(path, headers=clerk.bearer_header)).status_code == 403
    assert (await client.get(path)).status_code == 401
    refused = await client.post("/api/incidents", json=NEW, headers=crew.bearer_header | key())
    assert refused.status_code == 403
    assert (await client.get(path + "/reporter", headers=crew.bearer_header)).status_code == 403
    # Crews report progress on scene.
    moved = await client.post(
        path + "/status", json={"status": "on_scene"}, headers=crew.bearer_header
    )
    assert moved.status_code == 200 and moved.json()["status"] == "on_scene"


async def test_reading_the_reporter_is_audited(
    client: httpx.AsyncClient, dispatcher: Person, app: FastAPI
) -> None:
    incident = await _create(client, dispatcher)
    answer = await client.get(
        f"/api/incidents/{incident['id']}/reporter", headers=dispatcher.bearer_header
    )
    assert answer.json() == {"name": "김신고", "phone": "010-9876-5432"}
    async with app.state.kernel.sessions() as session:
        reads = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.subject_id == incident["id"], AuditEntry.action == "read"
                )
            )
        ).all()
    assert [(r.actor_user_id, r.detail) for r in reads] == [
        (dispatcher.user.id, {"fields": ["reporter_name", "reporter_phone"]})
    ]
    assert reads[0].request_id


async def test_another_organisation_sees_nothing(
    client: httpx.AsyncClient, dispatcher: Person, app: FastAPI
) -> None:
    incident = await _create(client, dispatcher)
    stranger = await make_person(app, roles={"incidents": [Role.DISPATCHER]})
    for path in ("", "/reporter"):
        answer = await client.get(
            f"/api/incidents/{incident['id']}{path}", headers=stranger.bearer_header
        )
        assert answer.status_code == 404, path
    note = await client.post(
        f"/api/incidents/{incident['id']}/notes",
        json={"text": "남의 사건"},
        headers=stranger.bearer_header,
    )
    assert note.status_code == 404
    listed = await client.get("/api/incidents", headers=stranger.bearer_header)
    assert incident["id"] not in [i["id"] for i in listed.json()["items"]]


async def test_the_life_of_an_incident(
    client: httpx.AsyncClient, dispatcher: Person, app: FastAPI
) -> None:
    incident = await _create(client, dispatcher)
    path = f"/api/incidents/{incident['id']}"
    auth = dispatcher.bearer_header
    unit = {"unit_id": "engine-31", "name": "목동 펌프 1"}
    linked = await client.post(path + "/units", json=unit, headers=auth)
    assert linked.json()["status"] == "dispatched"
    assert [(u["unit_id"], u["status"]) for u in linked.json()["units"]] == [
        ("engine-31", "assigned")
    ]
    moving = await client.post(path + "/units", json=unit | {"status": "en_route"}, headers=auth)
    assert [u["status"] for u in moving.json()["units"]] == ["en_route"]
    note = await client.post(
        path + "/notes", json={"text": "  2층 거주자 대피 완료 "}, headers=auth
    )
    assert note.status_code == 201 and note.json()["text"] == "2층 거주자 대피 완료"
    media = {"media_id": "m-123", "caption": "현장 사진"}
    for _ in range(2):
        attached = await client.post(path + "/media", json=media, headers=auth)
    assert [m["media_id"] for m in attached.json()["media"]] == ["m-123"]
    corrected = await client.patch(
        path, json={"subtype": "다세대 화재", "type": None, "location": None}, headers=auth
    )
    assert corrected.status_code == 200, corrected.text
    fixed = corrected.json()
    assert (fixed["subtype"], fixed["type"], fixed["latitude"]) == ("다세대 화재", "fire", None)
    moved_place = await client.patch(
        path, json={"location": {"latitude": 37.52, "longitude": 126.87}}, headers=auth
    )
    assert (moved_place.json()["latitude"], moved_place.json()["longitude"]) == (37.52, 126.87)
    backwards = await client.post(path + "/status", json={"status": "received"}, headers=auth)
    assert backwards.status_code == 409
    for status in ("on_scene", "resolved", "closed"):
        moved = await client.post(path + "/status", json={"status": status}, headers=auth)
        assert moved.status_code == 200, moved.text
    final = moved.json()
    assert [e["status"] for e in final["timeline"]] == [
        "received",
        "dispatched",
        "on_scene",
        "resolved",
        "closed",
    ]
    assert final["closed_at"] is not None
    late = await client.post(path + "/units", json=unit, headers=auth)
    assert late.status_code == 409
    async with app.state.kernel.sessions() as session:
        names = (
            await session.scalars(
                select(OutboxEvent.name)
                .where(OutboxEvent.key == incident["id"])
                .order_by(OutboxEvent.id)
            )
        ).all()
    assert names == [
        "incidents.created",
        "incidents.dispatched",
        "incidents.updated",  # unit en route
        "incidents.updated",  # note
        "incidents.updated",  # media (once)
        "incidents.updated",  # details
        "incidents.updated",  # place
        "incidents.updated",  # on scene
        "incidents.updated",  # resolved
        "incidents.closed",
    ]


async def test_listing_filters_by_status_type_and_openness(
    client: httpx.AsyncClient, dispatcher: Person
) -> None:
    fire = await _create(client, dispatcher)
    ems = await _create(client, dispatcher, NEW | {"type": "ems"})
    closed = await _create(client, dispatcher, NEW | {"type": "ems"})
    await client.post(
        f"/api/incidents/{closed['id']}/status",
        json={"status": "closed"},
        headers=dispatcher.bearer_header,
    )

    async def ids(query: str) -> list[str]:
        answer = await client.get("/api/incidents" + query, headers=dispatcher.bearer_header)
        assert answer.status_code == 200, answer.text
        return [i["id"] for i in answer.json()["items"]]

    assert await ids("") == [closed["id"], ems["id"], fire["id"]]
    assert await ids("?type=ems&open=true") == [ems["id"]]
    assert await ids("?status=closed&status=received") == [closed["id"], ems["id"], fire["id"]]
    assert await ids("?status=closed") == [closed["id"]]
    assert await ids("?limit=1&offset=1") == [ems["id"]]
    bad = await client.get("/api/incidents?status=burning", headers=dispatcher.bearer_header)
    assert bad.status_code == 422


async def test_a_signed_in_browser_needs_the_csrf_token(
    client: httpx.AsyncClient, dispatcher: Person
) -> None:
    await login(client, dispatcher.user.username, PASSWORD)
    forged = await client.post("/api/incidents", json=NEW, headers=key())
    assert forged.status_code == 403
    token = await csrf_from(client, "/incidents/")
    made = await client.post("/api/incidents", json=NEW, headers=key() | {"X-CSRF-Token": token})
    assert made.status_code == 201
