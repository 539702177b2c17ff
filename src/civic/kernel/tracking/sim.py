"""The tracking simulator: units drive towards random places and report like real devices.

Each unit picks a destination within `radius_m` of the centre, asks a planner for the way there
(a straight line, or roads when a Router is given) and moves along it at a speed typical of its
kind, reporting its position every `interval_s` seconds over HTTP (batches) or MQTT (one message
per position), exactly as devices do.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiomqtt
import httpx

from civic.kernel.db import utcnow
from civic.kernel.geo.points import Point, bearing_deg, destination, haversine_m
from civic.kernel.routing import Router, RoutingError, close_router, router_for
from civic.kernel.settings import KernelSettings
from civic.kernel.tracking.models import TrackedKind
from civic.kernel.tracking.schemas import MAX_BATCH

# Typical moving speeds in m/s: vehicles in town, drones cruising, people walking.
SPEEDS = {
    "fire_unit": 13.9,
    "ambulance": 15.3,
    "vehicle": 11.1,
    "drone": 12.0,
    "collaborator": 1.4,
    "watch": 1.2,
    "ankle_device": 1.3,
}
Send = Callable[[list[dict[str, Any]]], Awaitable[None]]


class Planner(Protocol):
    """Finds the way between two places as points to pass, ending at the destination."""

    async def __call__(self, start: Point, end: Point) -> list[Point]:
        """Return the waypoints from start to end."""


async def straight_line(start: Point, end: Point) -> list[Point]:
    """Go straight there."""
    return [end]


@dataclass
class SimUnit:
    """A simulated unit and the way it still has to go."""

    subject_id: str
    kind: str
    position: Point
    speed_mps: float
    heading_deg: float = 0.0
    waypoints: list[Point] = field(default_factory=list)

    def advance(self, seconds: float) -> None:
        """Move along the waypoints for some seconds."""
        left = self.speed_mps * seconds
        while left > 0 and self.waypoints:
            target = self.waypoints[0]
            gap = haversine_m(self.position, target)
            if gap > 0.01:
                self.heading_deg = bearing_deg(self.position, target)
            if gap <= left:
                self.position = target
                self.waypoints.pop(0)
                left -= gap
            else:
                self.position = destination(self.position, self.heading_deg, left)
                left = 0

    def report(self) -> dict[str, Any]:
        """Return the position as a device reports it."""
        return {
            "kind": self.kind,
            "subject_id": self.subject_id,
            "lat": round(self.position.lat, 7),
            "lon": round(self.position.lon, 7),
            "accuracy_m": 5.0,
            "speed_mps": round(self.speed_mps if self.waypoints else 0.0, 2),
            "heading_deg": round(self.heading_deg, 1),
            "time": utcnow().isoformat(),
        }


def make_units(
    *, count: int, kind: str, centre: Point, radius_m: float, rng: random.Random, prefix: str
) -> list[SimUnit]:
    """Place count units at random within radius_m of centre."""
    speed = SPEEDS.get(kind, 10.0)
    return [
        SimUnit(
            subject_id=f"{prefix}-{number + 1:03d}",
            kind=kind,
            position=destination(centre, rng.uniform(0, 360), radius_m * rng.random() ** 0.5),
            speed_mps=speed * rng.uniform(0.8, 1.2),
        )
        for number in range(count)
    ]


async def simulate(
    units: list[SimUnit],
    *,
    send: Send,
    centre: Point,
    radius_m: float,
    interval_s: float,
    duration_s: float,
    planner: Planner = straight_line,
    rng: random.Random | None = None,
    on_tick: Callable[[int], None] | None = None,
) -> int:
    """Move units for duration_s, sending their positions every interval_s; return how many."""
    rng = rng or random.Random()  # noqa: S311 - a simulation, not a secret
    sent = 0
    started = time.monotonic()
    last = started
    while True:
        now = time.monotonic()
        for unit in units:
            if not unit.waypoints:
                goal = destination(centre, rng.uniform(0, 360), radius_m * rng.random() ** 0.5)
                unit.waypoints = await planner(unit.position, goal)
            unit.advance(now - last)
        last = now
        reports = [unit.report() for unit in units]
        await send(reports)
        sent += len(reports)
        if on_tick is not None:
            on_tick(sent)
        if now - started >= duration_s:
            return sent
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - now)))


def http_sender(client: httpx.AsyncClient, token: str) -> Send:
    """Send positions in batches to POST /api/tracking/positions with a bearer token."""

    async def send(reports: list[dict[str, Any]]) -> None:
        for start in range(0, len(reports), MAX_BATCH):
            answer = await client.post(
                "/api/tracking/positions",
                json={"positions": reports[start : start + MAX_BATCH]},
                headers={"authorization": f"Bearer {token}"},
            )
            if answer.status_code != 202:
                raise RuntimeError(f"the server answered {answer.status_code}: {answer.text[:300]}")

    return send


def mqtt_sender(publish: Callable[[str, bytes], Awaitable[None]], organisation_code: str) -> Send:
    """Send each position as one MQTT message on civic/<org>/tracker/<kind>/<id>/position."""

    async def send(reports: list[dict[str, Any]]) -> None:
        for report in reports:
            kind, subject_id = report["kind"], report["subject_id"]
            topic = f"civic/{organisation_code}/tracker/{kind}/{subject_id}/position"
            body = {k: v for k, v in report.items() if k not in ("kind", "subject_id")}
            await publish(topic, json.dumps(body).encode())

    return send


# The Router's vehicle profile for each kind; drones fly straight.
PROFILES = {
    "fire_unit": "fire_engine",
    "ambulance": "ambulance",
    "vehicle": "car",
    "collaborator": "walking",
    "watch": "walking",
    "ankle_device": "walking",
}


def route_planner(router: Router, kind: str) -> Planner:
    """Follow the router's way for the kind's profile; a straight line when it has none."""
    profile = PROFILES.get(kind)

    async def plan(start: Point, end: Point) -> list[Point]:
        if profile is None:
            return [end]
        try:
            route = await router.route(start, end, profile=profile)
        except RoutingError:
            return [end]
        return [*route.geometry[1:]] or [end]

    return plan


def _centre(text: str | None, settings: KernelSettings) -> Point:
    if text is None:
        return Point(*settings.web.map_center)
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise ValueError(f"centre must be 'lat,lon', not {text!r}") from exc
    return Point(lat, lon)


async def run_simulation(
    settings: KernelSettings,
    *,
    units: int,
    kind: str,
    via: str,
    seconds: float,
    interval: float,
    token: str | None,
    organisation: str | None,
    url: str | None,
    mqtt_url: str | None,
    centre: str | None,
    radius_km: float,
    seed: int | None,
    say: Callable[[str], None] = print,
) -> int:
    """Run the simulator against a running platform (the `civic sim tracking` command)."""
    if kind not in {k.value for k in TrackedKind}:
        raise ValueError(f"kind must be one of {', '.join(k.value for k in TrackedKind)}")
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    middle = _centre(centre, settings)
    fleet = make_units(
        count=units,
        kind=kind,
        centre=middle,
        radius_m=radius_km * 1000,
        rng=rng,
        prefix=f"sim-{kind}",
    )
    router = router_for(settings.routing)
    options: dict[str, Any] = {
        "planner": route_planner(router, kind),
        "centre": middle,
        "radius_m": radius_km * 1000,
        "interval_s": interval,
        "duration_s": seconds,
        "rng": rng,
    }
    try:
        return await _run(via, fleet, options, settings, token, organisation, url, mqtt_url, say)
    finally:
        await close_router(router)


async def _run(
    via: str,
    fleet: list[SimUnit],
    options: dict[str, Any],
    settings: KernelSettings,
    token: str | None,
    organisation: str | None,
    url: str | None,
    mqtt_url: str | None,
    say: Callable[[str], None],
) -> int:
    units, kind, interval = len(fleet), fleet[0].kind, options["interval_s"]
    rng: random.Random = options["rng"]
    if via == "http":
        if not token:
            raise ValueError("HTTP needs a device token: --token or CIVIC_SIM_TOKEN")
        base = url or settings.web.base_url
        say(f"{base}/api/tracking/positions 로 {units}대를 {interval:g}초마다 보냅니다.")
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
            return await simulate(fleet, send=http_sender(client, token), **options)
    if via == "mqtt":
        if not organisation:
            raise ValueError("MQTT needs the organisation code: --organisation")
        broker = mqtt_url or settings.mqtt.url
        if broker is None:
            broker = f"mqtt://{settings.mqtt.embedded_host}:{settings.mqtt.embedded_port}"
        parts = urlsplit(broker)
        say(f"{broker} civic/{organisation}/tracker/{kind}/… 로 {units}대를 보냅니다.")
        async with aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            username=parts.username,
            password=parts.password,
            identifier=f"civic-sim-{rng.getrandbits(32):08x}",
        ) as broker_client:

            async def publish(topic: str, payload: bytes) -> None:
                await broker_client.publish(topic, payload, qos=0)

            return await simulate(fleet, send=mqtt_sender(publish, organisation), **options)
    raise ValueError(f"via must be http or mqtt, not {via!r}")
