"""Telemetry over MQTT: stored when valid, rejected (counted, logged) when not, never stuck."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import func, select

from civic.kernel.devices import devices_of
from civic.kernel.devices.models import Device, TelemetrySample
from civic.kernel.devices.registry import rotate_credential
from tests.kernel.devices.helpers import SimDevice, device_client, make_device, new_organisation
from tests.waiting import eventually


async def _stored(app: FastAPI, device_id: str) -> list[TelemetrySample]:
    async with app.state.kernel.sessions() as session:
        rows = await session.scalars(
            select(TelemetrySample)
            .where(TelemetrySample.device_id == device_id)
            .order_by(TelemetrySample.id)
        )
        return list(rows)


def _rejections(app: FastAPI, where: str) -> list[str]:
    return [
        reason for reason, place, _ in devices_of(app.state.kernel).stats.recent if where in place
    ]


async def test_valid_telemetry_is_stored_with_device_and_receive_time(broker_app: FastAPI) -> None:
    organisation = await new_organisation(broker_app)
    device = await make_device(broker_app, organisation=organisation)
    part = devices_of(broker_app.state.kernel)
    before = part.stats.accepted
    async with device_client(broker_app) as client:
        await client.publish(
            device.topic(),
            device.message("m-1", {"temperature": 21.5, "battery": 88}, ts="2026-11-25T01:00:00Z"),
            qos=1,
        )
        await client.publish(device.topic(), device.message("m-2", {"pressure": 410}), qos=1)
    await eventually(lambda: part.stats.accepted >= before + 2)
    rows = await _stored(broker_app, device.id)
    assert [r.message_id for r in rows] == ["m-1", "m-2"]
    assert rows[0].data == {"temperature": 21.5, "battery": 88.0}
    assert rows[0].sampled_at == datetime(2026, 11, 25, 1, tzinfo=UTC)
    assert rows[0].received_at > rows[0].sampled_at
    assert rows[1].sampled_at == rows[1].received_at  # no device time: filed when it came
    async with broker_app.state.kernel.sessions() as session:
        assert (await session.get(Device, device.id)).last_seen_at is not None  # type: ignore[union-attr]


async def test_bad_messages_are_rejected_counted_and_ingestion_goes_on(
    broker_app: FastAPI,
) -> None:
    organisation = await new_organisation(broker_app)
    device = await make_device(broker_app, organisation=organisation)
    switch = await make_device(broker_app, organisation=organisation, kind="switch")
    part = devices_of(broker_app.state.kernel)
    org = organisation.code
    bad = [
        (device.topic(), b"{not json"),  # malformed
        (device.topic(), b"[1, 2]"),  # malformed: not an object
        (device.topic(), device.message("s-1", {"temperature": "hot"})),  # schema
        (device.topic(), device.message("s-2", {"colour": "red"})),  # schema: unknown field
        (device.topic(), device.message("s-3", {"temperature": 999})),  # schema: out of range
        (f"civic/{org}/sensor/ghost-1/telemetry", device.message("u-1", {"battery": 1})),
        (f"civic/{org}/switch/{device.ref.external_id}/telemetry", device.message("k-1", {})),
        (switch.topic(), device.message("g-1", {"on": True})),  # signed with another key
        (device.topic(), json.dumps({"id": "n-1", "data": {"battery": 5}}).encode()),  # unsigned
    ]
    async with device_client(broker_app) as client:
        for topic, payload in bad:
            await client.publish(topic, payload, qos=1)
        await client.publish(device.topic(), device.message("ok-1", {"battery": 50}), qos=1)
        await client.publish(device.topic(), device.message("ok-1", {"battery": 50}), qos=1)
        await client.publish(device.topic(), device.message("ok-2", {"battery": 49}), qos=1)
    await eventually(lambda: len(_rejections(broker_app, org)) >= len(bad))
    await eventually(lambda: "duplicate" in _rejections(broker_app, device.id))
    reasons = sorted(_rejections(broker_app, org))
    assert reasons == sorted(
        ["malformed"] * 2
        + ["schema"] * 3
        + ["unknown_device", "wrong_kind", "signature", "signature"]
    )
    assert [r.message_id for r in await _stored(broker_app, device.id)] == ["ok-1", "ok-2"]
    assert await _stored(broker_app, switch.id) == []
    counted = part.stats.as_dict()["rejected"]
    assert counted["malformed"] >= 2 and counted["duplicate"] >= 1


async def test_duplicates_are_found_in_the_database_after_a_restart(app: FastAPI) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    part = devices_of(app.state.kernel)
    async with device_client(app) as client:
        await client.publish(device.topic(), device.message("r-1", {"battery": 70}), qos=1)
        await eventually(lambda: len(part.recent._ids.get(device.id, {})) == 1)
        part.recent._ids.clear()  # what a restarted process knows
        await client.publish(device.topic(), device.message("r-1", {"battery": 70}), qos=1)
        await client.publish(device.topic(), device.message("r-2", {"battery": 69}), qos=1)
    await eventually(lambda: "duplicate" in _rejections(app, device.id))
    await eventually(lambda: part.recent.seen(device.id, "r-2"))
    assert [r.message_id for r in await _stored(app, device.id)] == ["r-1", "r-2"]


async def test_a_disabled_device_is_refused(app: FastAPI) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    async with app.state.kernel.sessions() as session:
        row = await session.get(Device, device.id)
        row.status = "disabled"  # type: ignore[union-attr]
        await session.commit()
    async with device_client(app) as client:
        await client.publish(device.topic(), device.message("d-1", {"battery": 70}), qos=1)
    await eventually(lambda: "disabled" in _rejections(app, organisation.code))
    async with app.state.kernel.sessions() as session:
        count = await session.scalar(
            select(func.count()).where(TelemetrySample.device_id == device.id)
        )
    assert count == 0


async def test_a_new_token_works_at_once_and_the_old_one_stops(app: FastAPI) -> None:
    organisation = await new_organisation(app)
    device = await make_device(app, organisation=organisation)
    part = devices_of(app.state.kernel)
    async with device_client(app) as client:
        await client.publish(device.topic(), device.message("k-1", {"battery": 70}), qos=1)
        await eventually(lambda: part.recent.seen(device.id, "k-1"))  # the old key is cached
        async with app.state.kernel.sessions() as session:
            row = await session.get(Device, device.id)
            assert row is not None
            new_token = await rotate_credential(session, device=row)
            await session.commit()
        old = SimDevice(device.ref, device.token)
        renewed = SimDevice(device.ref, new_token)
        part.directory._cache[(organisation.code, device.ref.external_id)] = (0.0, device.ref)
        await client.publish(device.topic(), renewed.message("k-2", {"battery": 69}), qos=1)
        await client.publish(device.topic(), old.message("k-3", {"battery": 68}), qos=1)
    await eventually(lambda: part.recent.seen(device.id, "k-2"))
    await eventually(lambda: "signature" in _rejections(app, organisation.code))
    assert [r.message_id for r in await _stored(app, device.id)] == ["k-1", "k-2"]
