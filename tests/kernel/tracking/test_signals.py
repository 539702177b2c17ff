"""Silence: lost-signal and restored events through the outbox, and the retention purge."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.db import utcnow
from civic.kernel.relay import bus_of
from civic.kernel.tracking import store as store_module
from civic.kernel.tracking.events import SignalLost, SignalRestored
from civic.kernel.tracking.live import Pending
from civic.kernel.tracking.models import TrackedPosition, TrackedSubject, subject_key
from civic.kernel.tracking.part import Tracker
from tests.kernel.tracking.conftest import Agency, bearer, fix, post
from tests.waiting import eventually


async def test_silence_raises_signal_lost_and_a_new_position_restores_it(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency, tracker: Tracker
) -> None:
    heard: list[SignalLost | SignalRestored] = []

    async def remember(session: AsyncSession, event: SignalLost | SignalRestored) -> None:
        if event.organisation_id == agency.organisation.id:
            heard.append(event)

    bus_of(app.state.kernel).subscribe(
        SignalLost, SignalRestored, handler=remember, name="test.tracking.signals"
    )
    await post(
        client,
        agency.device_token,
        fix("engine-20", 35.20, 128.60),
        fix("drone-1", 35.21, 128.61, kind="drone"),
    )
    silence = tracker.settings.lost_after_seconds
    # Drones are lost after 30 s, fire units after 120 s: a minute later only the drone is.
    lost = await tracker.check_signals(now=utcnow() + timedelta(seconds=silence["drone"] + 30))
    assert [e.external_id for e in lost if e.organisation_id == agency.organisation.id] == [
        "drone-1"
    ]
    await eventually(lambda: len(heard) == 1)
    assert isinstance(heard[0], SignalLost)
    assert (heard[0].kind, heard[0].lat, heard[0].lon) == ("drone", 35.21, 128.61)
    assert heard[0].silent_seconds > silence["drone"]

    headers = bearer(agency.dispatcher_token)
    shown = await client.get("/api/tracking/subjects/drone/drone-1", headers=headers)
    assert shown.json()["signal_lost"] is True
    nearby = await client.get(
        "/api/tracking/nearby",
        params={"lat": 35.2, "lon": 128.6, "radius_m": 5000},
        headers=headers,
    )
    assert [s["subject_id"] for s in nearby.json()] == ["engine-20"]
    async with app.state.kernel.sessions() as session:
        row = await session.get(
            TrackedSubject, subject_key(agency.organisation.id, "drone", "drone-1")
        )
        assert row is not None and row.signal_lost_at is not None

    # A second check raises nothing new for the same silence.
    again = await tracker.check_signals(now=utcnow() + timedelta(seconds=silence["drone"] + 40))
    assert "drone-1" not in [e.external_id for e in again]

    await post(client, agency.device_token, fix("drone-1", 35.22, 128.62, kind="drone"))
    await tracker.flush()
    await eventually(lambda: len(heard) == 2)
    restored = heard[1]
    assert isinstance(restored, SignalRestored)
    assert (restored.external_id, restored.lat, restored.lon) == ("drone-1", 35.22, 128.62)
    shown = await client.get("/api/tracking/subjects/drone/drone-1", headers=headers)
    assert shown.json()["signal_lost"] is False
    async with app.state.kernel.sessions() as session:
        row = await session.get(
            TrackedSubject, subject_key(agency.organisation.id, "drone", "drone-1")
        )
        assert row is not None and row.signal_lost_at is None


async def test_the_purge_deletes_positions_past_retention(
    app: FastAPI, client: httpx.AsyncClient, agency: Agency, tracker: Tracker
) -> None:
    now = utcnow()
    days = tracker.settings.history_days
    await post(
        client,
        agency.device_token,
        fix("engine-30", 35.0, 128.0, time=now - timedelta(days=days - 1)),
        fix("engine-30", 35.1, 128.1, time=now - timedelta(hours=1)),
    )
    await tracker.flush()
    key = subject_key(agency.organisation.id, "fire_unit", "engine-30")

    async def kept() -> list[float]:
        async with app.state.kernel.sessions() as session:
            rows = await session.scalars(
                select(TrackedPosition.lat)
                .where(TrackedPosition.subject_id == key)
                .order_by(TrackedPosition.device_time)
            )
            return list(rows.all())

    assert await kept() == [35.0, 35.1]
    purged = await tracker.purge(now=now + timedelta(days=2))
    assert purged >= 1
    assert await kept() == [35.1]
    async with app.state.kernel.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TrackedSubject)) > 0


async def test_a_batch_the_database_keeps_refusing_is_dropped_not_blocking(
    app: FastAPI,
    client: httpx.AsyncClient,
    agency: Agency,
    tracker: Tracker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await tracker.flush()
    real_store = store_module.store

    async def refuse(session: AsyncSession, pending: Pending) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_module, "store", refuse)
    await post(client, agency.device_token, fix("engine-40", 35.0, 128.0))
    dropped = tracker.state.counters.history_dropped
    # Kept and tried again, then given up (the background loop may try too).
    for _ in range(3):
        if tracker.state.pending == 0:
            break
        with pytest.raises(RuntimeError, match="disk full"):
            await tracker.flush()
    assert tracker.state.pending == 0
    assert tracker.state.counters.history_dropped == dropped + 1

    monkeypatch.setattr(store_module, "store", real_store)
    await post(client, agency.device_token, fix("engine-40", 35.1, 128.1))
    assert await tracker.flush() == 1
