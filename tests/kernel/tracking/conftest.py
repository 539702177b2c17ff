"""Fixtures of the tracking tests: an organisation, a device that reports and a dispatcher."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from civic.kernel.db import transaction, utcnow
from civic.kernel.identity import Organisation, Role, User, issue_api_token
from civic.kernel.tracking.part import Tracker, tracker_of
from tests.factories import make_organisation, make_user


@dataclass(frozen=True)
class Agency:
    """An organisation with a reporting device and a dispatcher, each with a bearer token."""

    organisation: Organisation
    device: User
    device_token: str
    dispatcher: User
    dispatcher_token: str


async def token_for(app: FastAPI, user: User) -> str:
    async with transaction(app.state.kernel.sessions) as session:
        return await issue_api_token(session, user=user, name="test")


async def make_agency(app: FastAPI) -> Agency:
    organisation = await make_organisation(app, name="경상남도소방본부")
    device = await make_user(
        app, organisation=organisation, roles={"tracking": [Role.CREW]}, is_device=True
    )
    dispatcher = await make_user(
        app, organisation=organisation, roles={"tracking": [Role.DISPATCHER]}
    )
    return Agency(
        organisation,
        device,
        await token_for(app, device),
        dispatcher,
        await token_for(app, dispatcher),
    )


@pytest.fixture
async def agency(app: FastAPI) -> Agency:
    return await make_agency(app)


@pytest.fixture
def tracker(app: FastAPI) -> Tracker:
    return tracker_of(app.state.kernel)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def fix(
    subject_id: str,
    lat: float,
    lon: float,
    *,
    kind: str = "fire_unit",
    time: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject_id": subject_id,
        "lat": lat,
        "lon": lon,
        "time": (time or utcnow()).isoformat(),
        **extra,
    }


async def post(client: httpx.AsyncClient, token: str, *positions: dict[str, Any]) -> httpx.Response:
    return await client.post(
        "/api/tracking/positions", json={"positions": list(positions)}, headers=bearer(token)
    )
