"""The simulator drives the real MQTT adapter: its readings are stored, its devices answer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from civic.kernel.devices import devices_of
from civic.kernel.devices.models import TelemetrySample
from civic.kernel.devices.sim import prepare_devices, run_devices
from civic.kernel.identity import Role
from civic.kernel.mqtt import mqtt_of
from tests.kernel.devices.helpers import new_organisation, operator_token
from tests.waiting import eventually


async def test_simulated_switches_report_and_obey(app: FastAPI) -> None:
    kernel = app.state.kernel
    organisation = await new_organisation(app)
    devices = await prepare_devices(
        kernel.settings, organisation_code=organisation.code, kind="switch", count=3, seed=1
    )
    again = await prepare_devices(
        kernel.settings, organisation_code=organisation.code, kind="switch", count=3, seed=1
    )
    assert [d.ref.id for d in again] == [d.ref.id for d in devices]  # re-keyed, not duplicated
    part = devices_of(kernel)
    before = part.stats.accepted
    said: list[str] = []
    running = asyncio.create_task(
        run_devices(again, url=mqtt_of(kernel).url, seconds=2.5, interval=0.2, say=said.append)
    )
    operator = await operator_token(app, organisation, Role.OPERATOR)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await eventually(lambda: part.stats.accepted - before >= 3)
        target = again[0]
        sent = await http.post(
            f"/api/devices/{target.ref.id}/commands",
            json={"name": "switch", "arguments": {"on": True}},
            headers={"authorization": f"Bearer {operator}"},
        )
        command_id = sent.json()["id"]
        await eventually(lambda: target.on)
        for _ in range(200):
            status = await http.get(
                f"/api/devices/{target.ref.id}/commands/{command_id}",
                headers={"authorization": f"Bearer {operator}"},
            )
            if status.json()["status"] == "delivered":
                break
            await asyncio.sleep(0.02)
        assert status.json()["status"] == "delivered"
    sent_count = await running
    assert sent_count >= 9
    await eventually(lambda: part.stats.accepted - before >= sent_count)
    async with kernel.sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(TelemetrySample)
            .where(TelemetrySample.device_id.in_([d.ref.id for d in again]))
        )
    assert stored == sent_count
    assert any("switch" in line for line in said)


async def test_only_generic_kinds_are_simulated(app: FastAPI) -> None:
    organisation = await new_organisation(app)
    with pytest.raises(ValueError, match="sensor, switch"):
        await prepare_devices(
            app.state.kernel.settings,
            organisation_code=organisation.code,
            kind="pump",
            count=1,
            seed=None,
        )
