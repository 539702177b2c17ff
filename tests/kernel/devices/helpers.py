"""Helpers for device tests: registered devices, a device's own MQTT client, tokens."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from fastapi import FastAPI

from civic.kernel.db import transaction
from civic.kernel.devices.registry import DeviceRef, load_reference_by_id, register_device, sign
from civic.kernel.identity import Organisation, Role, issue_api_token
from civic.kernel.mqtt import mqtt_of
from tests.factories import make_organisation, make_user, unique

MOSQUITTO = ("127.0.0.1", 1883)


def mosquitto_reachable() -> bool:
    try:
        with socket.create_connection(MOSQUITTO, timeout=1):
            return True
    except OSError:
        return False


@dataclass
class SimDevice:
    """A registered device and its secret, able to build signed messages."""

    ref: DeviceRef
    token: str

    @property
    def id(self) -> str:
        return self.ref.id

    def topic(self, leaf: str = "telemetry") -> str:
        return f"civic/{self.ref.organisation_code}/{self.ref.kind}/{self.ref.external_id}/{leaf}"

    def message(self, message_id: str, data: dict[str, Any], **extra: Any) -> bytes:
        return json.dumps(sign(self.token, {"id": message_id, "data": data, **extra})).encode()


async def make_device(
    app: FastAPI, *, organisation: Organisation, kind: str = "sensor", external_id: str = ""
) -> SimDevice:
    async with transaction(app.state.kernel.sessions) as session:
        device, token = await register_device(
            session,
            organisation_id=organisation.id,
            kind=kind,
            external_id=external_id or unique("dev"),
            name="시험 장치",
            lat=37.5,
            lon=127.0,
        )
        ref = await load_reference_by_id(session, device_id=device.id)
    assert ref is not None
    return SimDevice(ref, token)


async def operator_token(app: FastAPI, organisation: Organisation, role: Role) -> str:
    user = await make_user(app, organisation=organisation, roles={"devices": [role]})
    async with transaction(app.state.kernel.sessions) as session:
        return await issue_api_token(session, user=user, name="test")


async def new_organisation(app: FastAPI) -> Organisation:
    return await make_organisation(app)


def device_client(app: FastAPI) -> aiomqtt.Client:
    """An MQTT client of a device, connected to the broker the app uses."""
    url = urlsplit(mqtt_of(app.state.kernel).url)
    return aiomqtt.Client(url.hostname or "127.0.0.1", url.port or 1883)
