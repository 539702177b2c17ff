from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from civic.app import create_app
from civic.settings import Settings
from tests.conftest import need_server
from tests.kernel.devices.helpers import mosquitto_reachable


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker_app(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[FastAPI]:
    """A started platform whose MQTT broker is the embedded amqtt one, or Mosquitto on :1883."""
    if request.param == "mosquitto":
        if not mosquitto_reachable():
            need_server("Mosquitto on localhost:1883", "connection refused")
        settings = settings.model_copy(
            update={"mqtt": settings.mqtt.model_copy(update={"url": "mqtt://127.0.0.1:1883"})}
        )
    application = create_app(settings, services=[])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
