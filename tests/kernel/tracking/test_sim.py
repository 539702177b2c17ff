"""The simulator drives the real HTTP ingest, at speeds a unit of its kind could go."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import httpx
from fastapi import FastAPI

from civic.kernel.db import utcnow
from civic.kernel.geo.points import Point, haversine_m
from civic.kernel.routing import StraightLineRouter
from civic.kernel.tracking.part import Tracker
from civic.kernel.tracking.sim import SPEEDS, http_sender, make_units, route_planner, simulate
from civic.kernel.tracking.store import history
from tests.kernel.tracking.conftest import Agency

CHANGWON = Point(35.2280, 128.6811)


async def test_simulated_units_report_over_http_at_realistic_speeds(
    app: FastAPI, agency: Agency, tracker: Tracker
) -> None:
    rng = random.Random(3)
    units = make_units(
        count=3, kind="fire_unit", centre=CHANGWON, radius_m=3000, rng=rng, prefix="sim"
    )
    router = StraightLineRouter(speeds_kmh={"fire_engine": 50})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        sent = await simulate(
            units,
            send=http_sender(client, agency.device_token),
            centre=CHANGWON,
            radius_m=3000,
            interval_s=0.2,
            duration_s=1.0,
            planner=route_planner(router, "fire_unit"),
            rng=rng,
        )
    assert sent >= 3 * 5 and sent % 3 == 0
    await tracker.flush()
    for unit in units:
        live = tracker.state.subject(agency.organisation.id, "fire_unit", unit.subject_id)
        assert live is not None and live.source == "http"
        assert 0.8 * SPEEDS["fire_unit"] <= unit.speed_mps <= 1.2 * SPEEDS["fire_unit"]
        async with app.state.kernel.sessions() as session:
            track = await history(
                session,
                subject_id=live.id,
                since=utcnow() - timedelta(minutes=1),
                until=utcnow(),
                limit=100,
            )
        assert len(track) == sent // 3
        assert haversine_m(CHANGWON, Point(track[-1].lat, track[-1].lon)) <= 3000 + 1
        # Over the run, the unit moved at about its own speed: a fire engine in town.
        metres = sum(
            haversine_m(Point(a.lat, a.lon), Point(b.lat, b.lon))
            for a, b in itertools.pairwise(track)
        )
        seconds = (track[-1].device_time - track[0].device_time).total_seconds()
        assert 0.5 * unit.speed_mps <= metres / seconds <= 1.25 * unit.speed_mps
