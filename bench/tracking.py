"""Benchmark of tracking: position updates into the moving index, and HTTP batch ingest.

Two parts, each with a baseline measured in the same run:

1. In memory, one core: UPDATES validated positions of SUBJECTS fire units, fed in batches of
   1000 to the live state (time checks, per-subject ordering, the moving index, the history
   buffer), without and with the realtime hub publishing each move. Baselines: a plain dict
   assignment per position, and MovingIndex.move alone. The goal is ≥ 20,000 updates/s.
2. End to end over HTTP: `civic run` on a fresh SQLite database (pinned to one CPU when there are
   two), a client posting batches of 1000 positions with a bearer token, until every position is
   stored as history (one transaction per batch). Baseline: one INSERT + COMMIT per position
   into the same kind of database from this process.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.shell import civic, cpus, free_port, start_server, stop_server, wait_for_first_page
from civic.kernel.db import create_engine, utcnow
from civic.kernel.geo.moving import MovingIndex
from civic.kernel.realtime import Hub
from civic.kernel.settings import RealtimeSettings, TrackingSettings
from civic.kernel.tracking.live import LiveState
from civic.kernel.tracking.part import publish_moves
from civic.kernel.tracking.schemas import PositionBatch, PositionReport

SUBJECTS = int(os.environ.get("CIVIC_BENCH_TRACKING_SUBJECTS", "5000"))
UPDATES = int(os.environ.get("CIVIC_BENCH_TRACKING_UPDATES", "200000"))
HTTP_POSITIONS = int(os.environ.get("CIVIC_BENCH_TRACKING_HTTP", "100000"))
BASELINE_INSERTS = 2000
BATCH = 1000
GOAL_PER_S = 20_000
STORE_TIMEOUT_S = 60.0
TOKEN = re.compile(r"civ_[A-Za-z0-9_\-]+")
ORGANISATION = "gn-fire"  # the demo organisation of the admin account

# Wide enough for the tables when stdout is not a terminal (CI logs, files).
console = Console(width=max(Console().width, 112))


@dataclass(frozen=True)
class Rate:
    """How many items a step handled and in how many seconds."""

    label: str
    items: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Items per second."""
        return self.items / self.seconds

    @property
    def micros(self) -> float:
        """Microseconds per item."""
        return self.seconds / self.items * 1e6


def positions(count: int, subjects: int, rng: random.Random) -> list[dict[str, Any]]:
    """Return count JSON positions of subjects driving around Changwon, newest last."""
    start = utcnow() - timedelta(seconds=count // subjects + 10)
    where = [
        (35.2 + rng.uniform(-0.1, 0.1), 128.6 + rng.uniform(-0.1, 0.1)) for _ in range(subjects)
    ]
    out = []
    for number in range(count):
        unit = number % subjects
        lat, lon = where[unit]
        lat, lon = lat + rng.uniform(-1e-4, 1e-4), lon + rng.uniform(-1e-4, 1e-4)
        where[unit] = (lat, lon)
        out.append(
            {
                "kind": "fire_unit",
                "subject_id": f"engine-{unit:05d}",
                "lat": round(lat, 7),
                "lon": round(lon, 7),
                "speed_mps": 12.0,
                "heading_deg": 90.0,
                "time": (start + timedelta(seconds=number // subjects)).isoformat(),
            }
        )
    return out


def timed(label: str, items: int, work: Callable[[], object]) -> Rate:
    """Run work once and return its rate."""
    started = time.perf_counter()
    work()
    return Rate(label, items, time.perf_counter() - started)


def in_memory() -> list[Rate]:
    """Measure updates into the moving index, with their baselines."""
    rng = random.Random(7)
    raw = positions(UPDATES, SUBJECTS, rng)
    reports = [PositionReport.model_validate(item) for item in raw]
    batches = [reports[i : i + BATCH] for i in range(0, len(reports), BATCH)]
    now = utcnow()

    def plain_dict() -> None:
        last: dict[tuple[str, str], tuple[float, float, object]] = {}
        for report in reports:
            last[(report.kind.value, report.subject_id)] = (report.lat, report.lon, report.time)

    def index_only() -> None:
        index = MovingIndex()
        for report in reports:
            index.move(report.subject_id, report.lat, report.lon)

    def live_state(publisher: bool) -> Callable[[], None]:
        def run() -> None:
            state = LiveState(TrackingSettings(max_pending=UPDATES))
            if publisher:
                hub = Hub(RealtimeSettings())
                state.publisher = partial(publish_moves, hub)
            for batch in batches:
                outcome = state.ingest(batch, organisation_id="org", source="bench", now=now)
                assert outcome.accepted == len(batch), outcome

        return run

    bodies = [{"positions": raw[i : i + BATCH]} for i in range(0, min(len(raw), 20 * BATCH), BATCH)]

    def validate() -> None:
        for body in bodies:
            PositionBatch.model_validate(body)

    return [
        timed("baseline: dict assignment", UPDATES, plain_dict),
        timed("MovingIndex.move alone", UPDATES, index_only),
        timed("live state (checks, index, history)", UPDATES, live_state(False)),
        timed("live state + realtime hub publish", UPDATES, live_state(True)),
        timed("JSON batch validation (pydantic)", len(bodies) * BATCH, validate),
    ]


async def insert_one_by_one(url: str) -> Rate:
    """Baseline: store positions one INSERT + COMMIT each, as a naive ingest would."""
    from sqlalchemy import text

    engine = create_engine(url)
    now = utcnow()
    try:
        async with engine.begin() as connection:
            organisation = await connection.scalar(
                text("SELECT id FROM organisations WHERE code = :code"), {"code": ORGANISATION}
            )
            await connection.execute(
                text(
                    "INSERT INTO tracking_subjects (id, organisation_id, kind, external_id, "
                    "display_name, created_at) VALUES ('baseline', :org, 'fire_unit', "
                    "'baseline', 'baseline', :now)"
                ),
                {"org": organisation, "now": now},
            )
        started = time.perf_counter()
        for number in range(BASELINE_INSERTS):
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO tracking_positions (subject_id, lat, lon, device_time, "
                        "received_at, source) VALUES ('baseline', :lat, :lon, :t, :t, 'bench')"
                    ),
                    {"lat": 35.2 + number * 1e-6, "lon": 128.6, "t": now},
                )
        return Rate(
            "baseline: INSERT + COMMIT per position",
            BASELINE_INSERTS,
            time.perf_counter() - started,
        )
    finally:
        await engine.dispose()


def end_to_end(folder: Path) -> list[Rate]:
    """Post batches to a live server until every position is stored; return the rates."""
    database = f"sqlite+aiosqlite:///{folder / 'civic.db'}"
    env = {
        **os.environ,
        "CIVIC_DATABASE__URL": database,
        "CIVIC_VAR_DIR": str(folder / "var"),
        "CIVIC_ENV": "development",
        "CIVIC_MQTT__EMBEDDED_PORT": "0",
        "CIVIC_LOG_JSON": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    civic(["db", "upgrade"], env)
    civic(["demo", "load"], env)
    token = _token(env)
    server_cpus, client_cpus = cpus()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = folder / "server.log"
    server, started = start_server(env, port, log_path)
    try:
        if server_cpus:
            os.sched_setaffinity(server.pid, server_cpus)
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        wait_for_first_page(server, base_url, started, log_path)
        raw = positions(
            HTTP_POSITIONS, max(1, min(SUBJECTS, HTTP_POSITIONS // 10)), random.Random(11)
        )
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, trust_env=False, timeout=30.0) as client:
            before = client.get("/api/tracking/stats", headers=headers).json()["stored"]
            began = time.perf_counter()
            for i in range(0, len(raw), BATCH):
                answer = client.post(
                    "/api/tracking/positions",
                    json={"positions": raw[i : i + BATCH]},
                    headers=headers,
                )
                if answer.status_code != 202:
                    raise RuntimeError(f"POST positions: {answer.status_code} {answer.text[:300]}")
            posted = time.perf_counter() - began
            while True:
                stats = client.get("/api/tracking/stats", headers=headers).json()
                if stats["stored"] - before >= len(raw):
                    break
                if time.perf_counter() - began > STORE_TIMEOUT_S:
                    raise RuntimeError(f"not every position was stored in time: {stats}")
                time.sleep(0.02)
            stored = time.perf_counter() - began
    finally:
        stop_server(server)
    baseline = asyncio.run(insert_one_by_one(database))
    return [
        baseline,
        Rate(f"HTTP batches of {BATCH}: accepted", len(raw), posted),
        Rate(f"HTTP batches of {BATCH}: accepted and stored", len(raw), stored),
    ]


def _token(env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "civic", "users", "token", "admin", "--name", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    match = TOKEN.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"no token: {result.stdout}\n{result.stderr}")
    return match.group(0)


def report(title: str, rates: list[Rate], *, goal: bool = False) -> None:
    """Print rates with their ratio to the first (the baseline)."""
    table = Table(title=title, title_justify="left")
    for column in ("step", "items", "seconds", "per second", "µs each", "× baseline"):
        table.add_column(column, justify="left" if column == "step" else "right", no_wrap=True)
    baseline = rates[0]
    for rate in rates:
        table.add_row(
            rate.label,
            f"{rate.items:,}",
            f"{rate.seconds:.3f}",
            f"{rate.per_second:,.0f}",
            f"{rate.micros:.2f}",
            f"{rate.per_second / baseline.per_second:.2f}",
        )
    console.print(table)
    if goal:
        live = next(r for r in rates if r.label.startswith("live state ("))
        verdict = "[green]met[/green]" if live.per_second >= GOAL_PER_S else "[red]missed[/red]"
        console.print(
            f"Goal ≥ {GOAL_PER_S:,} updates/s into the moving index: {verdict} "
            f"({live.per_second:,.0f}/s)."
        )


def main() -> int:
    """Run the tracking benchmark; return the exit status."""
    console.print(
        f"[bold]Civic tracking benchmark[/bold] · Python {platform.python_version()} · "
        f"{platform.machine()} · {os.cpu_count()} CPUs · {SUBJECTS:,} subjects"
    )
    memory = in_memory()
    report(f"Updates into the moving index ({UPDATES:,} positions, one core)", memory, goal=True)
    with tempfile.TemporaryDirectory(prefix="civic-bench-tracking-") as temp:
        try:
            http = end_to_end(Path(temp))
        except RuntimeError as exc:
            console.print(f"[red]benchmark failed:[/red] {exc}")
            return 1
    report(f"End-to-end HTTP ingest into SQLite ({HTTP_POSITIONS:,} positions)", http)
    live = next(r for r in memory if r.label.startswith("live state ("))
    return 0 if live.per_second >= GOAL_PER_S else 1
