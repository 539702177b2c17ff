"""Simulated devices that drive the real MQTT adapter: `civic sim devices`.

The simulator registers (or re-keys) its own devices `sim-0001`, `sim-0002`, ... in an
organisation, then publishes signed telemetry for each on its topic at a steady pace, and
answers commands like a device would. Readings follow slow random walks with occasional
anomalies (a pressure drop, a heat spike, a stuck heater) so alarm rules have something to
find. Only the generic kinds are simulated here; services add the physics of their own kinds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from sqlalchemy import select

from civic.kernel.db import create_engine, create_sessionmaker, transaction
from civic.kernel.devices.models import Device
from civic.kernel.devices.registry import (
    DeviceRef,
    device_topic,
    load_reference_by_id,
    register_device,
    rotate_credential,
    sign,
)
from civic.kernel.identity import Organisation
from civic.kernel.settings import KernelSettings

SIMULATED_KINDS = ("sensor", "switch")


@dataclass
class SimulatedDevice:
    """One simulated device: its identity, secret and the state of its physics."""

    ref: DeviceRef
    token: str
    rng: random.Random
    temperature: float = 18.0
    humidity: float = 55.0
    pressure: float = 420.0
    battery: float = 100.0
    on: bool = False
    anomaly: int = 0
    sent: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def reading(self, anomaly_rate: float) -> dict[str, Any]:
        """Advance the physics one step and return the telemetry data."""
        rng = self.rng
        if self.anomaly == 0 and rng.random() < anomaly_rate:
            self.anomaly = rng.randint(3, 8)
        spike = self.anomaly > 0
        self.anomaly = max(0, self.anomaly - 1)
        self.battery = max(0.0, self.battery - rng.uniform(0.0, 0.02))
        if self.ref.kind == "switch":
            power = rng.gauss(1500, 40) if self.on or spike else 0.0
            return {"on": self.on or spike, "power_w": round(max(power, 0.0), 1)}
        self.temperature += rng.gauss(0, 0.15) + (18.0 - self.temperature) * 0.02
        self.humidity = min(100.0, max(0.0, self.humidity + rng.gauss(0, 0.5)))
        self.pressure += rng.gauss(0, 2.0) + (420.0 - self.pressure) * 0.05
        return {
            "temperature": round(self.temperature + (25.0 if spike else 0.0), 2),
            "humidity": round(self.humidity, 1),
            "pressure": round(self.pressure * (0.4 if spike else 1.0), 1),
            "battery": round(self.battery, 1),
        }

    def message(self, anomaly_rate: float) -> bytes:
        """Return the next signed telemetry message."""
        self.sent += 1
        body = {
            "id": f"{int(time.time() * 1000)}-{self.sent}",
            "ts": time.time(),
            "data": self.reading(anomaly_rate),
        }
        return json.dumps(sign(self.token, body)).encode()

    def answer(self, command: dict[str, Any]) -> bytes:
        """Carry out a command and return the signed acknowledgement."""
        name, arguments = command.get("name"), command.get("args") or {}
        ok, result = True, dict[str, Any]()
        if name == "switch" and self.ref.kind == "switch":
            self.on = bool(arguments.get("on"))
            result = {"on": self.on}
        elif name == "configure":
            self.state.update(arguments.get("values") or {})
            result = {"configured": sorted(self.state)}
        elif name != "ping":
            ok = False
        body: dict[str, Any] = {"id": command.get("id"), "ok": ok, "result": result}
        if not ok:
            body["error"] = f"unknown command {name!r}"
        return json.dumps(sign(self.token, body)).encode()


async def prepare_devices(
    settings: KernelSettings, *, organisation_code: str, kind: str, count: int, seed: int | None
) -> list[SimulatedDevice]:
    """Register the simulator's devices (or give existing ones new tokens) and return them."""
    if kind not in SIMULATED_KINDS:
        raise ValueError(f"시뮬레이터는 {', '.join(SIMULATED_KINDS)} 종류만 흉내냅니다: {kind!r}")
    engine = create_engine(settings.database.url)
    rng = random.Random(seed)  # noqa: S311 - simulated readings, not secrets
    devices = []
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            organisation = await session.scalar(
                select(Organisation).where(Organisation.code == organisation_code)
            )
            if organisation is None:
                raise ValueError(f"기관 코드 {organisation_code!r}가 없습니다.")
            for n in range(1, count + 1):
                external_id = f"sim-{kind}-{n:04d}"
                device = await session.scalar(
                    select(Device).where(
                        Device.organisation_id == organisation.id,
                        Device.external_id == external_id,
                    )
                )
                if device is None:
                    device, token = await register_device(
                        session,
                        organisation_id=organisation.id,
                        kind=kind,
                        external_id=external_id,
                        name=f"시뮬레이터 {kind} {n}",
                        firmware="sim-1",
                    )
                else:
                    token = await rotate_credential(session, device=device)
                ref = await load_reference_by_id(session, device_id=device.id)
                assert ref is not None  # noqa: S101 - flushed above
                devices.append(SimulatedDevice(ref, token, random.Random(rng.random())))  # noqa: S311
    finally:
        await engine.dispose()
    return devices


def broker_url(settings: KernelSettings, override: str | None) -> str:
    """Return the broker: given, configured, or the embedded one of a running `civic run`."""
    if override:
        return override
    if settings.mqtt.url:
        return settings.mqtt.url
    return f"mqtt://{settings.mqtt.embedded_host}:{settings.mqtt.embedded_port}"


async def run_devices(
    devices: list[SimulatedDevice],
    *,
    url: str,
    seconds: float,
    interval: float,
    anomaly_rate: float = 0.01,
    say: Callable[[str], None] = print,
) -> int:
    """Publish telemetry for devices every interval for seconds and answer commands."""
    if not devices:
        return 0
    parts = urlsplit(url)
    by_topic = {device_topic(d.ref, "commands"): d for d in devices}
    first = devices[0].ref
    async with aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or 1883,
        username=parts.username,
        password=parts.password,
    ) as client:
        await client.subscribe(f"civic/{first.organisation_code}/{first.kind}/+/commands", qos=1)
        answering = asyncio.create_task(_answer_commands(client, by_topic, say))
        sent = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                # Spread the fleet over the interval, as real devices do not report in step.
                for index, device in enumerate(devices):
                    await client.publish(
                        device_topic(device.ref, "telemetry"), device.message(anomaly_rate), qos=1
                    )
                    sent += 1
                    due = started + interval * (index + 1) / len(devices)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
        finally:
            answering.cancel()
            await asyncio.gather(answering, return_exceptions=True)
    return sent


async def _answer_commands(
    client: aiomqtt.Client, by_topic: dict[str, SimulatedDevice], say: Callable[[str], None]
) -> None:
    async for message in client.messages:
        device = by_topic.get(message.topic.value)
        if device is None:
            continue
        try:
            command = json.loads(message.payload)
        except (TypeError, ValueError):
            continue
        say(f"명령 수신 (command) {device.ref.external_id}: {command.get('name')}")
        await client.publish(
            device_topic(device.ref, "commands/ack"), device.answer(command), qos=1
        )
