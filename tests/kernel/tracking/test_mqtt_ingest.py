"""Positions over MQTT, through the Mosquitto server on localhost:1883."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from fastapi import FastAPI

from civic.app import create_app
from civic.kernel.db import utcnow
from civic.kernel.mqtt import mqtt_of
from civic.kernel.tracking.part import Tracker, tracker_of
from civic.settings import Settings
from tests.conftest import need_server
from tests.factories import make_organisation
from tests.waiting import eventually


@pytest.fixture
async def mosquitto_app(settings: Settings) -> AsyncIterator[FastAPI]:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError as exc:
        need_server("Mosquitto on localhost:1883", repr(exc))
    configured = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"url": "mqtt://127.0.0.1:1883"})}
    )
    application = create_app(configured, services=[])
    async with application.router.lifespan_context(application):
        await eventually(lambda: mqtt_of(application.state.kernel).connected)
        yield application


async def test_positions_arrive_over_mqtt_and_bad_messages_are_counted(
    mosquitto_app: FastAPI,
) -> None:
    organisation = await make_organisation(mosquitto_app, name="경남소방")
    tracker: Tracker = tracker_of(mosquitto_app.state.kernel)
    base = f"civic/{organisation.code}/tracker"
    good = {"lat": 35.2279, "lon": 128.6811, "speed_mps": 8.0, "time": utcnow().isoformat()}
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"test-{organisation.code}") as device:
        await device.publish(f"{base}/fire_unit/engine-1/position", b"{not json", qos=1)
        await device.publish(
            f"{base}/fire_unit/engine-1/position", json.dumps({"lat": 200, "lon": 1}), qos=1
        )
        await device.publish(f"{base}/spaceship/s-1/position", json.dumps(good), qos=1)
        await device.publish(
            "civic/no-such-org/tracker/fire_unit/x/position", json.dumps(good), qos=1
        )
        await device.publish(f"{base}/fire_unit/engine-1/position", json.dumps(good), qos=1)

        def arrived() -> bool:
            return tracker.state.subject(organisation.id, "fire_unit", "engine-1") is not None

        await eventually(arrived)
    live = tracker.state.subject(organisation.id, "fire_unit", "engine-1")
    assert live is not None
    assert (live.lat, live.lon, live.speed_mps, live.source) == (35.2279, 128.6811, 8.0, "mqtt")
    # Messages are read in order: the four bad ones came first and were counted, not fatal.
    assert tracker.state.counters.malformed >= 4
    assert tracker.state.subject(organisation.id, "spaceship", "s-1") is None
