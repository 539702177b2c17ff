"""Who is where: last positions, radius and nearest queries, organisation scoping, audit."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from civic.kernel.audit import AuditEntry
from civic.kernel.db import utcnow
from civic.kernel.geo.points import Point, destination
from civic.kernel.tracking.part import Tracker
from tests.kernel.tracking.conftest import Agency, bearer, fix, make_agency, post

# Changwon city hall; units are placed due east of it at known distances.
CENTRE = Point(35.2280, 128.6811)


def east_of(metres: float) -> tuple[float, float]:
    spot = destination(CENTRE, 90.0, metres)
    return spot.lat, spot.lon


async def place(client: httpx.AsyncClient, agency: Agency, **units: float) -> None:
    positions = []
    for name, metres in units.items():
        lat, lon = east_of(metres)
        kind = "ambulance" if name.startswith("amb") else "fire_unit"
        positions.append(fix(name, lat, lon, kind=kind))
    answer = await post(client, agency.device_token, *positions)
    assert answer.status_code == 202 and answer.json()["accepted"] == len(positions)


async def test_within_a_radius_nearest_first_and_only_our_own(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency
) -> None:
    await place(client, agency, e500=500, e1500=1500, e4000=4000, amb800=800)
    neighbour = await make_agency(app)
    await place(client, neighbour, theirs=100)

    answer = await client.get(
        "/api/tracking/nearby",
        params={"lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 2000},
        headers=bearer(agency.dispatcher_token),
    )
    assert answer.status_code == 200, answer.text
    found = [(s["subject_id"], round(s["distance_m"])) for s in answer.json()]
    assert found == [("e500", 500), ("amb800", 800), ("e1500", 1500)]

    engines_only = await client.get(
        "/api/tracking/nearby",
        params={"lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 2000, "kind": "fire_unit"},
        headers=bearer(agency.dispatcher_token),
    )
    assert [s["subject_id"] for s in engines_only.json()] == ["e500", "e1500"]


async def test_the_k_nearest_across_kinds(client: httpx.AsyncClient, agency: Agency) -> None:
    await place(client, agency, n300=300, n900=900, amb600=600, n5000=5000)
    answer = await client.get(
        "/api/tracking/nearest",
        params={"lat": CENTRE.lat, "lon": CENTRE.lon, "k": 3},
        headers=bearer(agency.dispatcher_token),
    )
    assert answer.status_code == 200, answer.text
    assert [s["subject_id"] for s in answer.json()] == ["n300", "amb600", "n900"]
    assert all(s["last"]["source"] == "http" for s in answer.json())


async def test_queries_refuse_bad_places(client: httpx.AsyncClient, agency: Agency) -> None:
    headers = bearer(agency.dispatcher_token)
    for params in (
        {"lat": 95, "lon": 128, "radius_m": 10},
        {"lat": 35, "lon": 128, "radius_m": -1},
        {"lat": 35, "lon": 128, "radius_m": "nan"},
        {"lat": 35, "lon": 128, "kind": "spaceship", "radius_m": 5},
    ):
        answer = await client.get("/api/tracking/nearby", params=params, headers=headers)
        assert answer.status_code == 422, params
    assert (
        await client.get(
            "/api/tracking/nearest", params={"lat": 35, "lon": 128, "k": 0}, headers=headers
        )
    ).status_code == 422


async def test_another_organisations_subject_is_absent(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency
) -> None:
    await place(client, agency, ours=100)
    neighbour = await make_agency(app)
    answer = await client.get(
        "/api/tracking/subjects/fire_unit/ours", headers=bearer(neighbour.dispatcher_token)
    )
    assert answer.status_code == 404
    listed = await client.get("/api/tracking/subjects", headers=bearer(neighbour.dispatcher_token))
    assert "ours" not in [s["subject_id"] for s in listed.json()]


async def test_reading_where_a_person_is_leaves_an_audit_entry(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency, tracker: Tracker
) -> None:
    await post(
        client,
        agency.device_token,
        fix("W-17", 35.2, 128.6, kind="watch", time=utcnow() - timedelta(seconds=30)),
        fix("engine-8", 35.2, 128.6),
    )
    headers = bearer(agency.dispatcher_token)
    person = await client.get("/api/tracking/subjects/watch/W-17", headers=headers)
    assert person.status_code == 200 and person.json()["personal"] is True
    unit = await client.get("/api/tracking/subjects/fire_unit/engine-8", headers=headers)
    assert unit.status_code == 200
    await tracker.flush()
    history = await client.get("/api/tracking/subjects/watch/W-17/history", headers=headers)
    assert len(history.json()["positions"]) == 1

    async with app.state.kernel.sessions() as session:
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.actor_user_id == agency.dispatcher.id)
            )
        ).all()
    read = [(e.action, e.subject_type, e.subject_id, e.detail["fields"]) for e in entries]
    assert read == [
        ("read", "tracking.watch", "W-17", ["lat", "lon", "time"]),
        ("read", "tracking.watch", "W-17", ["history"]),
    ]
    assert all(e.via == "token" and e.organisation_id == agency.organisation.id for e in entries)


async def test_the_live_map_page_is_for_dispatchers(
    client: httpx.AsyncClient, agency: Agency
) -> None:
    page = await client.get(
        "/tracking/live", headers={**bearer(agency.dispatcher_token), "accept": "text/html"}
    )
    assert page.status_code == 200
    assert "/static/civic-tracking.js" in page.text
    assert (
        'data-topics="tracking.fire_unit,tracking.ambulance,tracking.vehicle,tracking.drone"'
        in page.text
    )
    with_people = await client.get(
        "/tracking/live?kind=watch",
        headers={**bearer(agency.dispatcher_token), "accept": "text/html"},
    )
    assert 'data-topics="tracking.watch"' in with_people.text
    device = await client.get(
        "/tracking/live", headers={**bearer(agency.device_token), "accept": "text/html"}
    )
    assert device.status_code == 403
