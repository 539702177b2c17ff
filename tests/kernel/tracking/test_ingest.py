"""Positions posted over HTTP: accepted, refused with clear problems, ordered per subject."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from civic.app import create_app
from civic.kernel.db import utcnow
from civic.kernel.identity import Role
from civic.kernel.tracking.models import TrackedPosition, subject_key
from civic.kernel.tracking.part import Tracker, tracker_of
from civic.settings import Settings
from tests.factories import make_user
from tests.kernel.tracking.conftest import Agency, bearer, fix, post, token_for


async def stored_positions(app: FastAPI, agency: Agency, kind: str, subject_id: str) -> int:
    key = subject_key(agency.organisation.id, kind, subject_id)
    async with app.state.kernel.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(TrackedPosition)
            .where(TrackedPosition.subject_id == key)
        )
    return int(count or 0)


async def test_a_device_posts_positions_that_a_dispatcher_then_sees(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency, tracker: Tracker
) -> None:
    now = utcnow()
    answer = await post(
        client,
        agency.device_token,
        fix("engine-1", 35.2279, 128.6811, time=now - timedelta(seconds=20), name="창원 펌프 1"),
        fix("engine-1", 35.2290, 128.6820, time=now - timedelta(seconds=10), speed_mps=12.5),
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 2, "history_only": 0, "duplicates": 0, "rejected": []}

    seen = await client.get(
        "/api/tracking/subjects/fire_unit/engine-1", headers=bearer(agency.dispatcher_token)
    )
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["display_name"] == "창원 펌프 1"
    assert body["personal"] is False and body["signal_lost"] is False
    assert (body["last"]["lat"], body["last"]["lon"]) == (35.2290, 128.6820)
    assert body["last"]["speed_mps"] == 12.5 and body["last"]["source"] == "http"

    await tracker.flush()
    assert await stored_positions(app, agency, "fire_unit", "engine-1") == 2
    history = await client.get(
        "/api/tracking/subjects/fire_unit/engine-1/history",
        params={"since": (now - timedelta(minutes=5)).isoformat()},
        headers=bearer(agency.dispatcher_token),
    )
    assert history.status_code == 200, history.text
    assert [p["lat"] for p in history.json()["positions"]] == [35.2279, 35.2290]


@pytest.mark.parametrize(
    ("position", "where", "words"),
    [
        ({"lat": 91.0}, "body.positions.0.lat", "less than or equal to 90"),
        ({"lon": -181.0}, "body.positions.0.lon", "greater than or equal to -180"),
        ({"kind": "spaceship"}, "body.positions.0.kind", "fire_unit"),
        ({"subject_id": "a/b"}, "body.positions.0.subject_id", "pattern"),
        ({"time": "2026-11-25T09:00:00"}, "body.positions.0.time", "timezone"),
        ({"heading_deg": 400}, "body.positions.0.heading_deg", "360"),
        ({"colour": "red"}, "body.positions.0.colour", "Extra inputs"),
    ],
)
async def test_malformed_positions_are_refused_with_where_and_why(
    client: httpx.AsyncClient, agency: Agency, position: dict[str, object], where: str, words: str
) -> None:
    answer = await post(client, agency.device_token, {**fix("engine-2", 35.1, 128.1), **position})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["detail"].startswith(where)
    assert words in problem["detail"]


async def test_an_empty_or_oversized_batch_is_refused(
    client: httpx.AsyncClient, agency: Agency
) -> None:
    empty = await client.post(
        "/api/tracking/positions", json={"positions": []}, headers=bearer(agency.device_token)
    )
    assert empty.status_code == 422 and "at least 1" in empty.json()["detail"]
    many = [fix(f"u-{i}", 35.0, 128.0) for i in range(1001)]
    big = await client.post(
        "/api/tracking/positions", json={"positions": many}, headers=bearer(agency.device_token)
    )
    assert big.status_code == 422 and "at most 1000" in big.json()["detail"]


async def test_a_time_in_the_future_is_refused_and_the_rest_taken(
    client: httpx.AsyncClient, agency: Agency
) -> None:
    future = utcnow() + timedelta(minutes=10)
    mixed = await post(
        client,
        agency.device_token,
        fix("engine-3", 35.1, 128.1),
        fix("engine-4", 35.1, 128.1, time=future),
    )
    assert mixed.status_code == 202
    body = mixed.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["subject_id"]) for r in body["rejected"]] == [(1, "engine-4")]
    assert "future" in body["rejected"][0]["reason"]

    only_bad = await post(client, agency.device_token, fix("engine-4", 35.1, 128.1, time=future))
    assert only_bad.status_code == 202
    assert only_bad.json()["accepted"] == 0
    assert "device clock" in only_bad.json()["rejected"][0]["reason"]


async def test_a_time_older_than_the_retention_is_refused(
    client: httpx.AsyncClient, agency: Agency
) -> None:
    ancient = utcnow() - timedelta(days=400)
    answer = await post(client, agency.device_token, fix("engine-5", 35.1, 128.1, time=ancient))
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 0
    assert "30-day retention" in answer.json()["rejected"][0]["reason"]


async def test_without_credentials_or_role_nobody_posts_or_reads(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency
) -> None:
    anonymous = await client.post("/api/tracking/positions", json={"positions": [fix("x", 1, 1)]})
    assert anonymous.status_code == 401
    forged = await post(client, "civ_not-a-token", fix("x", 1, 1))
    assert forged.status_code == 401
    clerk = await make_user(
        app, organisation=agency.organisation, roles={"formhelper": [Role.CLERK]}
    )
    refused = await post(client, await token_for(app, clerk), fix("x", 1, 1))
    assert refused.status_code == 403 and "tracking" in refused.json()["detail"]
    # A device reports; it does not watch.
    watching = await client.get("/api/tracking/subjects", headers=bearer(agency.device_token))
    assert watching.status_code == 403


async def test_a_collaborator_reports_only_their_own_position(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency
) -> None:
    volunteer = await make_user(
        app, organisation=agency.organisation, roles={"tracking": [Role.COLLABORATOR]}
    )
    token = await token_for(app, volunteer)
    own = await post(client, token, fix(volunteer.id, 35.1, 128.1, kind="collaborator"))
    assert own.status_code == 202 and own.json()["accepted"] == 1
    other = await post(client, token, fix("engine-9", 35.1, 128.1))
    assert other.status_code == 403 and "자기 위치" in other.json()["detail"]


async def test_older_reports_go_to_history_only_and_repeats_are_ignored(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency, tracker: Tracker
) -> None:
    now = utcnow()
    newer = fix("engine-6", 35.30, 128.30, time=now - timedelta(seconds=5))
    older = fix("engine-6", 35.10, 128.10, time=now - timedelta(seconds=60))
    first = await post(client, agency.device_token, newer)
    assert first.json()["accepted"] == 1
    late = await post(client, agency.device_token, older, newer)
    assert late.json() == {"accepted": 0, "history_only": 1, "duplicates": 1, "rejected": []}

    live = tracker.state.subject(agency.organisation.id, "fire_unit", "engine-6")
    assert live is not None and (live.lat, live.lon) == (35.30, 128.30)
    await tracker.flush()
    assert await stored_positions(app, agency, "fire_unit", "engine-6") == 2


async def test_positions_survive_a_restart(
    settings: Settings, client: httpx.AsyncClient, agency: Agency, tracker: Tracker
) -> None:
    await post(client, agency.device_token, fix("engine-7", 35.5, 128.5, name="진해 물탱크"))
    await tracker.flush()
    restarted = create_app(settings, services=[])
    async with restarted.router.lifespan_context(restarted):
        live = tracker_of(restarted.state.kernel).state.subject(
            agency.organisation.id, "fire_unit", "engine-7"
        )
    assert live is not None
    assert (live.lat, live.lon, live.display_name) == (35.5, 128.5, "진해 물탱크")
