"""Alarm rules: thresholds (at once, N in a row, held N seconds), silence; ack and escalation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from civic.kernel.bus import OutboxEvent
from civic.kernel.db import transaction, utcnow
from civic.kernel.devices import devices_of
from civic.kernel.devices.alarms import create_rule
from civic.kernel.devices.models import Alarm
from civic.kernel.identity import Organisation, Role
from tests.kernel.devices.helpers import SimDevice, make_device, new_organisation, operator_token


async def _send(http: httpx.AsyncClient, device: SimDevice, message_id: str, **data: Any) -> None:
    ts = data.pop("ts", None)
    body: dict[str, Any] = {"id": message_id, "data": data}
    if ts is not None:
        body["ts"] = ts.isoformat()
    answer = await http.post(
        f"/api/devices/{device.id}/telemetry",
        json=body,
        headers={"authorization": f"Bearer {device.token}"},
    )
    assert answer.status_code == 202, answer.text


async def _rule(app: FastAPI, organisation: Organisation, **fields: Any) -> str:
    async with transaction(app.state.kernel.sessions) as session:
        rule = await create_rule(session, organisation_id=organisation.id, name="규칙", **fields)
    devices_of(app.state.kernel).rules.invalidate()
    return rule.id


async def _alarms(app: FastAPI, device: SimDevice) -> list[Alarm]:
    async with app.state.kernel.sessions() as session:
        rows = await session.scalars(
            select(Alarm).where(Alarm.device_id == device.id).order_by(Alarm.raised_at)
        )
        return list(rows)


async def _events(app: FastAPI, device: SimDevice) -> list[str]:
    async with app.state.kernel.sessions() as session:
        rows = await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        return [r.name for r in rows if r.payload.get("device_id") == device.id]


async def test_a_threshold_raises_and_clears_an_alarm(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    await _rule(app, organisation, metric="pressure", operator_="<", threshold=200)
    await _send(http, device, "a", pressure=400)
    assert await _alarms(app, device) == []
    await _send(http, device, "b", pressure=150)
    [alarm] = await _alarms(app, device)
    assert (alarm.status, alarm.value, alarm.severity) == ("active", 150, "warning")
    await _send(http, device, "c", pressure=120)  # still low: no second alarm
    await _send(http, device, "d", pressure=300)
    [alarm] = await _alarms(app, device)
    assert alarm.status == "cleared" and alarm.cleared_at is not None
    assert await _events(app, device) == ["devices.alarm_raised", "devices.alarm_cleared"]
    assert len(devices_of(app.state.kernel).alarm_latencies) >= 1


async def test_n_times_in_row_needs_consecutive_samples(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    await _rule(
        app, organisation, metric="temperature", operator_=">=", threshold=80, times_in_row=3
    )
    for n, value in enumerate([85, 90, 20, 85, 86]):
        await _send(http, device, f"t{n}", temperature=value)
    assert await _alarms(app, device) == []
    await _send(http, device, "t9", temperature=95)
    [alarm] = await _alarms(app, device)
    assert alarm.value == 95


async def test_for_n_seconds_needs_the_condition_to_hold(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation, kind="switch")
    await _rule(
        app,
        organisation,
        kind="switch",
        metric="power_w",
        operator_=">",
        threshold=1000,
        for_seconds=120,
    )
    start = utcnow() - timedelta(minutes=10)
    await _send(http, device, "p0", on=True, power_w=1500, ts=start)
    await _send(http, device, "p1", on=True, power_w=1600, ts=start + timedelta(seconds=60))
    assert await _alarms(app, device) == []
    await _send(http, device, "p2", on=True, power_w=1700, ts=start + timedelta(seconds=125))
    assert [a.value for a in await _alarms(app, device)] == [1700]


async def test_silence_raises_an_alarm_and_telemetry_clears_it(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    await _rule(app, organisation, silent_seconds=600, device_id=device.id, severity="critical")
    part = devices_of(app.state.kernel)
    await part.run_checks(now=utcnow() + timedelta(minutes=5))
    assert await _alarms(app, device) == []
    await part.run_checks(now=utcnow() + timedelta(minutes=11))
    await part.run_checks(now=utcnow() + timedelta(minutes=12))  # raised once only
    [alarm] = await _alarms(app, device)
    assert alarm.severity == "critical" and alarm.value is not None and alarm.value >= 600
    await _send(http, device, "back", battery=80)
    [alarm] = await _alarms(app, device)
    assert alarm.status == "cleared"


async def test_acknowledge_needs_an_operator_and_stops_escalation(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    await _rule(app, organisation, metric="battery", operator_="<", threshold=10)
    await _send(http, device, "low", battery=5)
    [alarm] = await _alarms(app, device)
    part = devices_of(app.state.kernel)
    await part.run_checks(now=alarm.raised_at + timedelta(minutes=16))
    await part.run_checks(now=alarm.raised_at + timedelta(minutes=17))  # not yet due again
    [alarm] = await _alarms(app, device)
    assert alarm.escalation_level == 1

    reader = await operator_token(app, organisation, Role.DISPATCHER)
    operator = await operator_token(app, organisation, Role.OPERATOR)
    path = f"/api/devices/alarms/{alarm.id}/acknowledge"
    denied = await http.post(path, headers={"authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    listed = await http.get("/api/devices/alarms", headers={"authorization": f"Bearer {reader}"})
    assert [a["id"] for a in listed.json()] == [alarm.id]
    done = await http.post(path, headers={"authorization": f"Bearer {operator}"})
    assert done.status_code == 200 and done.json()["acknowledged_at"] is not None
    again = await http.post(path, headers={"authorization": f"Bearer {operator}"})
    assert again.status_code == 409

    await part.run_checks(now=alarm.raised_at + timedelta(hours=2))
    [alarm] = await _alarms(app, device)
    assert alarm.escalation_level == 1
    assert await _events(app, device) == [
        "devices.alarm_raised",
        "devices.alarm_escalated",
        "devices.alarm_acknowledged",
    ]


async def test_another_organisation_cannot_see_or_acknowledge(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    await _rule(app, organisation, metric="battery", operator_="<", threshold=10)
    await _send(http, device, "low", battery=5)
    [alarm] = await _alarms(app, device)
    stranger = await operator_token(app, await new_organisation(app), Role.OPERATOR)
    headers = {"authorization": f"Bearer {stranger}"}
    answer = await http.post(f"/api/devices/alarms/{alarm.id}/acknowledge", headers=headers)
    assert answer.status_code == 404
    assert (await http.get(f"/api/devices/{device.id}", headers=headers)).status_code == 404
