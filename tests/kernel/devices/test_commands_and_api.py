"""Registry and telemetry over HTTP, series at resolutions, commands round trip over MQTT."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from fastapi import FastAPI

from civic.kernel.db import utcnow
from civic.kernel.devices import devices_of, sign
from civic.kernel.identity import Role
from tests.kernel.devices.helpers import (
    device_client,
    make_device,
    new_organisation,
    operator_token,
)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_register_a_device_and_send_telemetry_over_http(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    operator = await operator_token(app, organisation, Role.OPERATOR)
    reader = await operator_token(app, organisation, Role.INSPECTOR)
    body = {
        "kind": "sensor",
        "external_id": "hyd-001",
        "name": "소화전 1",
        "place": {"lat": 37.5, "lon": 127},
    }
    denied = await http.post("/api/devices", json=body, headers=_bearer(reader))
    assert denied.status_code == 403
    created = await http.post("/api/devices", json=body, headers=_bearer(operator))
    assert created.status_code == 201, created.text
    device_id, token = created.json()["device"]["id"], created.json()["token"]
    assert (
        created.json()["telemetry_topic"] == f"civic/{organisation.code}/sensor/hyd-001/telemetry"
    )
    again = await http.post("/api/devices", json=body, headers=_bearer(operator))
    assert again.status_code == 409 and "이미" in again.json()["detail"]
    unknown_kind = await http.post(
        "/api/devices",
        json={**body, "kind": "teapot", "external_id": "x"},
        headers=_bearer(operator),
    )
    assert unknown_kind.status_code == 422

    path = f"/api/devices/{device_id}/telemetry"
    start = utcnow() - timedelta(minutes=3)
    for n, value in enumerate([400, 420, 380]):
        ts = (start + timedelta(seconds=30 * n)).isoformat()
        sent = await http.post(
            path,
            json={"id": f"h{n}", "ts": ts, "data": {"pressure": value}},
            headers=_bearer(token),
        )
        assert sent.status_code == 202 and sent.json() == {"stored": True}
    repeat = await http.post(
        path, json={"id": "h0", "data": {"pressure": 1}}, headers=_bearer(token)
    )
    assert repeat.json() == {"stored": False}

    wrong = await http.post(path, json={"id": "w", "data": {}}, headers=_bearer("dev_wrong"))
    assert wrong.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert (await http.post(path, json={"id": "w", "data": {}})).status_code == 401
    other = await make_device(app, organisation=organisation)
    crossed = await http.post(path, json={"id": "w", "data": {}}, headers=_bearer(other.token))
    assert crossed.status_code == 401  # a device's token is good for itself only
    invalid = await http.post(
        path, json={"id": "v", "data": {"pressure": -5}}, headers=_bearer(token)
    )
    assert invalid.status_code == 422 and invalid.json()["reason"] == "schema"
    garbage = await http.post(path, content=b"{", headers=_bearer(token))
    assert garbage.status_code == 422 and garbage.json()["reason"] == "malformed"

    raw = await http.get(
        f"/api/devices/{device_id}/series",
        params={"metric": "pressure", "start": start.isoformat()},
        headers=_bearer(reader),
    )
    assert [p["value"] for p in raw.json()["points"]] == [400, 420, 380]
    await devices_of(app.state.kernel).flush_rollups()
    hourly = await http.get(
        f"/api/devices/{device_id}/series",
        params={"metric": "pressure", "start": start.isoformat(), "resolution": "1h"},
        headers=_bearer(reader),
    )
    points = hourly.json()["points"]
    assert sum(p["count"] for p in points) == 3
    assert min(p["minimum"] for p in points) == 380 and max(p["maximum"] for p in points) == 420

    stats = await http.get("/api/devices/ingest", headers=_bearer(reader))
    assert stats.json()["rejected"]["duplicate"] >= 1
    kinds = await http.get("/api/devices/kinds", headers=_bearer(reader))
    assert {"sensor", "switch"} <= {k["name"] for k in kinds.json()}


async def test_a_command_round_trip_with_a_simulated_device(
    broker_app: FastAPI,
) -> None:
    app = broker_app
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation, kind="switch")
    operator = await operator_token(app, organisation, Role.OPERATOR)
    transport = httpx.ASGITransport(app=app)
    received: list[dict[str, object]] = []
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
        device_client(app) as mqtt,
    ):
        await mqtt.subscribe(device.topic("commands"), qos=1)
        bad = await http.post(
            f"/api/devices/{device.id}/commands",
            json={"name": "switch", "arguments": {"on": "maybe"}},
            headers=_bearer(operator),
        )
        assert bad.status_code == 422
        unknown = await http.post(
            f"/api/devices/{device.id}/commands", json={"name": "launch"}, headers=_bearer(operator)
        )
        assert unknown.status_code == 422
        sent = await http.post(
            f"/api/devices/{device.id}/commands",
            json={"name": "switch", "arguments": {"on": True}},
            headers=_bearer(operator),
        )
        assert sent.status_code == 202, sent.text
        command_id = sent.json()["id"]
        async for message in mqtt.messages:
            received.append(json.loads(message.payload))  # type: ignore[arg-type]
            break
        assert received[0]["id"] == command_id and received[0]["args"] == {"on": True}
        status = await http.get(
            f"/api/devices/{device.id}/commands/{command_id}", headers=_bearer(operator)
        )
        assert status.json()["status"] == "sent"
        ack = sign(device.token, {"id": command_id, "ok": True, "result": {"on": True}})
        await mqtt.publish(device.topic("commands/ack"), json.dumps(ack), qos=1)

        async def delivered() -> str:
            answer = await http.get(
                f"/api/devices/{device.id}/commands/{command_id}", headers=_bearer(operator)
            )
            return str(answer.json()["status"])

        states: list[str] = []
        for _ in range(300):
            states.append(await delivered())
            if states[-1] == "delivered":
                break
            await asyncio.sleep(0.01)
        assert states[-1] == "delivered"


async def test_unanswered_commands_expire_and_http_acks_work(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    operator = await operator_token(app, organisation, Role.OPERATOR)
    first = await http.post(
        f"/api/devices/{device.id}/commands",
        json={"name": "ping", "timeout_seconds": 30},
        headers=_bearer(operator),
    )
    second = await http.post(
        f"/api/devices/{device.id}/commands", json={"name": "ping"}, headers=_bearer(operator)
    )
    path = f"/api/devices/{device.id}/commands/{second.json()['id']}"
    failed = await http.post(
        f"{path}/ack", json={"ok": False, "error": "busy"}, headers=_bearer(device.token)
    )
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    late = await http.post(f"{path}/ack", json={"ok": True}, headers=_bearer(device.token))
    assert late.status_code == 409
    await devices_of(app.state.kernel).run_checks(now=utcnow() + timedelta(minutes=1))
    answer = await http.get(
        f"/api/devices/{device.id}/commands/{first.json()['id']}", headers=_bearer(operator)
    )
    assert answer.json()["status"] == "expired"
