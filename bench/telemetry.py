"""Benchmark of device telemetry: MQTT message → validated → stored → alarm rules evaluated.

A publisher in its own process plays N devices and publishes signed telemetry (QoS 1) as fast
as the broker takes it; the platform (the real app: MQTT part, devices part, outbox relay)
receives, validates, stores in batches and evaluates an alarm rule that about 1 % of the
messages trip and the next message of that device clears. Throughput is messages stored per
second from the first publish to the last commit. Alarm latency is the time from a message's
receipt to the commit of its alarm row and outbox event.

Baseline, measured in the same run through the same path: one insert and commit per message
(`devices.batch_size = 1`). Legs: SQLite (a temporary file) and PostgreSQL on localhost:5432
when it answers. Broker: Mosquitto on localhost:1883 when it answers, else the embedded amqtt
broker (whose own ceiling is a few thousand messages a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

from civic.app import create_app
from civic.kernel import migrations
from civic.kernel.db import create_engine, transaction
from civic.kernel.devices import devices_of
from civic.kernel.devices.alarms import create_rule
from civic.kernel.devices.registry import register_device, sign
from civic.kernel.identity import OrganisationKind, create_organisation
from civic.kernel.logging import configure_logging
from civic.kernel.mqtt import mqtt_of
from civic.settings import Settings

DEVICES = int(os.environ.get("CIVIC_BENCH_DEVICES", "200"))
MESSAGES = int(os.environ.get("CIVIC_BENCH_MESSAGES", "40000"))
BASELINE_MESSAGES = int(os.environ.get("CIVIC_BENCH_BASELINE_MESSAGES", "2000"))
POSTGRES_ADMIN = os.environ.get(
    "CIVIC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RATE = float(os.environ.get("CIVIC_BENCH_RATE", "10000"))
ALARM_EVERY = 101  # prime to the fleet size: each low reading is cleared by the next one
CHUNK = 100
TIMEOUT_S = 120.0
STALL_S = 10.0
console = Console(width=150)


@dataclass(frozen=True)
class Result:
    """One measured run."""

    label: str
    offered: int
    stored: int
    seconds: float
    publish_seconds: float
    cpu_us: float
    latencies: list[float]
    rejected: int

    @property
    def per_second(self) -> float:
        """Messages stored per second."""
        return self.stored / self.seconds if self.seconds else 0.0

    @property
    def offered_per_second(self) -> float:
        """Messages published per second."""
        return self.offered / self.publish_seconds if self.publish_seconds else 0.0

    def latency_ms(self, q: int) -> float | None:
        """Percentile q of alarm latency in milliseconds."""
        if len(self.latencies) < 2:
            return None
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000


def reachable(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _remaining_length(size: int) -> bytes:
    out = bytearray()
    while True:
        byte, size = size % 128, size // 128
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out)


def _publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + _remaining_length(len(body)) + body  # PUBLISH, QoS 1


def publish_all(host: str, port: int, path: Path, rate: float) -> None:
    """Publish the pickled messages in path with QoS 1, as a fleet of devices on one link.

    A plain MQTT 3.1.1 writer: packets are encoded up front and written in large chunks, and
    PUBACKs are counted by a reader thread, so the load generator is not what limits the run
    (a paho publisher manages only a few thousand messages a second here). Runs in its own
    process: prints "ready" once connected, waits for a line on stdin, publishes, prints the
    seconds it took until every PUBACK came back.
    """
    import threading

    messages: list[tuple[str, bytes]] = pickle.loads(path.read_bytes())  # noqa: S301 - ours
    window = 20_000  # unacknowledged packets at most (packet ids are 16-bit)
    packets = [
        _publish_packet(topic, payload, n % 65_535 + 1)
        for n, (topic, payload) in enumerate(messages)
    ]
    sock = socket.create_connection((host, port))
    client_id = f"bench-{uuid.uuid4().hex[:8]}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"  # MQTT 3.1.1, clean session, keepalive 60 s
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
    if sock.recv(4)[:1] != b"\x20":
        raise RuntimeError("no CONNACK")
    acked = 0
    progress = threading.Condition()

    def count_acks() -> None:
        nonlocal acked
        pending = 0
        while acked < len(packets):
            chunk = sock.recv(65_536)
            if not chunk:
                return
            pending += len(chunk)
            with progress:
                acked += pending // 4  # every packet back is a 4-byte PUBACK
                pending %= 4
                progress.notify_all()

    reader = threading.Thread(target=count_acks, daemon=True)
    reader.start()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for first in range(0, len(packets), CHUNK):
        # Paced: a broker drops what a subscriber falls behind by (Mosquitto keeps 1,000).
        delay = started + first / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with progress:
            progress.wait_for(lambda first=first: first - acked < window, timeout=TIMEOUT_S)
        sock.sendall(b"".join(packets[first : first + CHUNK]))
    with progress:
        progress.wait_for(lambda: acked >= len(packets), timeout=TIMEOUT_S)
    print(f"{time.perf_counter() - started:.6f}", flush=True)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


class Publisher:
    """The publishing process."""

    def __init__(
        self, host: str, port: int, messages: list[tuple[str, bytes]], folder: Path, rate: float
    ):
        """Write the messages for the child and start it."""
        path = folder / f"messages-{uuid.uuid4().hex[:6]}.pickle"
        path.write_bytes(pickle.dumps(messages))
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.telemetry", "publish", host, str(port), str(path)]
            + [str(rate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        """Block until the child is connected."""
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the publisher did not start")

    def go(self) -> None:
        """Let the child publish."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> float:
        """Wait for the child; return its publishing seconds."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        self.process.wait(timeout=30)
        return float(line) if line else float("nan")


def build_messages(devices: list[tuple[str, str]], count: int, run: str) -> list[tuple[str, bytes]]:
    """Signed telemetry round robin over devices; every ALARM_EVERY-th has a low battery."""
    import json

    messages = []
    for n in range(count):
        topic, token = devices[n % len(devices)]
        battery = 5.0 if n % ALARM_EVERY == 0 else 60.0 + n % 30
        body = sign(
            token,
            {"id": f"{run}-{n}", "data": {"temperature": 20 + n % 7, "battery": battery}},
        )
        messages.append((topic, json.dumps(body).encode()))
    return messages


@contextlib.asynccontextmanager
async def database(kind: str, folder: Path) -> AsyncIterator[str]:
    """A fresh, migrated database of kind (sqlite or postgres)."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        admin = None
        name = ""
    else:
        admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
        name = f"civic_bench_{uuid.uuid4().hex[:10]}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        url = f"{base}/{name}"
    engine = create_engine(url)
    await migrations.upgrade(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def measure(
    label: str, url: str, broker: str | None, folder: Path, *, batch: int, count: int
) -> Result:
    """Run the platform on url and push count messages through it."""
    settings = Settings(
        env="development",
        var_dir=folder,
        database={"url": url},
        mqtt={"url": broker, "embedded_port": 0},
        devices={"batch_size": batch},
    )
    app = create_app(settings, services=[])
    configure_logging(json=False, level=logging.WARNING)
    kernel = app.state.kernel
    async with app.router.lifespan_context(app):
        run = uuid.uuid4().hex[:6]
        devices: list[tuple[str, str]] = []
        async with transaction(kernel.sessions) as session:
            organisation = await create_organisation(
                session, code=f"bench-{run}", name="벤치", kind=OrganisationKind.OTHER
            )
            for n in range(DEVICES):
                device, token = await register_device(
                    session,
                    organisation_id=organisation.id,
                    kind="sensor",
                    external_id=f"s{n:05d}",
                    name=f"센서 {n}",
                )
                topic = f"civic/{organisation.code}/sensor/{device.external_id}/telemetry"
                devices.append((topic, token))
            await create_rule(
                session,
                organisation_id=organisation.id,
                name="배터리 부족",
                metric="battery",
                operator_="<",
                threshold=10,
            )
        messages = build_messages(devices, count, run)
        part = devices_of(kernel)
        part.rules.invalidate()
        host, port = mqtt_of(kernel).url.removeprefix("mqtt://").rsplit(":", 1)
        publisher = Publisher(host, int(port), messages, folder, RATE)
        await asyncio.to_thread(publisher.wait_ready)
        accepted = part.stats.accepted
        cpu = time.process_time()
        started = last_progress = finished = time.perf_counter()
        publisher.go()
        seen = accepted
        # Until all are stored, or nothing arrived for a while (the broker dropped the rest).
        while part.stats.accepted - accepted < count:
            now = time.perf_counter()
            if part.stats.accepted != seen:
                seen, last_progress, finished = part.stats.accepted, now, now
            elif now - last_progress > STALL_S or now - started > TIMEOUT_S:
                break
            await asyncio.sleep(0.002)
        else:
            finished = time.perf_counter()
        stored = part.stats.accepted - accepted
        cpu_seconds = time.process_time() - cpu
        publish_seconds = await asyncio.to_thread(publisher.finish)
        return Result(
            label=label,
            offered=count,
            stored=stored,
            seconds=finished - started,
            publish_seconds=publish_seconds,
            cpu_us=cpu_seconds / max(stored, 1) * 1e6,
            latencies=list(part.alarm_latencies),
            rejected=sum(part.stats.rejected.values()),
        )


async def run_leg(kind: str, broker: str | None, folder: Path) -> list[Result]:
    """Measure the baseline and the batched pipeline on one database kind."""
    results = []
    for label, batch, count in (
        (f"{kind} baseline: commit per message", 1, BASELINE_MESSAGES),
        (f"{kind} batched pipeline", 1000, MESSAGES),
    ):
        async with database(kind, folder) as url:
            results.append(await measure(label, url, broker, folder, batch=batch, count=count))
    return results


def report(results: list[Result]) -> None:
    """Print the figures."""
    table = Table(
        title=f"Telemetry: MQTT → validate → store → rules ({DEVICES} devices, QoS 1, "
        f"offered at {RATE:,.0f} msg/s)",
        title_justify="left",
    )
    columns = (
        "run",
        "offered",
        "stored",
        "lost",
        "stored/s",
        "× baseline",
        "CPU µs/msg",
        "alarms",
        "p50 ms",
        "p99 ms",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "run" else "right", no_wrap=True)
    baseline: Result | None = None
    for result in results:
        if "baseline" in result.label:
            baseline = result
        ratio = result.per_second / baseline.per_second if baseline else float("nan")
        p50, p99 = result.latency_ms(50), result.latency_ms(99)
        table.add_row(
            result.label,
            f"{result.offered:,}",
            f"{result.stored:,}",
            f"{result.offered - result.stored:,}",
            f"{result.per_second:,.0f}",
            f"{ratio:.1f}",
            f"{result.cpu_us:.0f}",
            str(len(result.latencies)),
            "-" if p50 is None else f"{p50:.1f}",
            "-" if p99 is None else f"{p99:.1f}",
        )
    console.print(table)
    console.print(
        "stored/s = messages stored per second, first publish to last commit; lost = published "
        "but never stored (a broker drops what a subscriber falls too far behind by); × = "
        "against the baseline (one insert and commit per message) of the same database in this "
        "run; CPU µs/msg = CPU time of the platform process per stored message "
        "(1e6 / it ≈ what one free core could sustain); alarm latency = receipt → alarm row and "
        "outbox event committed. Targets: ≥ 10,000 msg/s sustained, p99 < 1,000 ms."
    )


def main() -> int:
    """Run the telemetry benchmark; return the exit status."""
    broker = "mqtt://127.0.0.1:1883" if reachable(1883) else None
    legs = ["sqlite"] + (["postgres"] if reachable(5432) else [])
    console.print(
        f"[bold]Civic telemetry benchmark[/bold] · Python {platform.python_version()} · "
        f"{os.cpu_count()} CPUs · broker: {'Mosquitto :1883' if broker else 'embedded amqtt'}"
        f" · legs: {', '.join(legs)}"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="civic-bench-") as temp:
        try:
            for leg in legs:
                results += asyncio.run(run_leg(leg, broker, Path(temp)))
        except RuntimeError as exc:
            console.print(f"[red]benchmark failed:[/red] {exc}")
            return 1
    report(results)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["publish"]:
        publish_all(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5]))
    else:
        raise SystemExit(main())
