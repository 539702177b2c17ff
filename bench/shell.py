"""Benchmark of the web shell against a live server, the way `civic run` starts it.

Two figures:

1. Time to first page: seconds from starting `python -m civic run` until `GET /login`
   answers 200 (imports, settings, app factory, uvicorn start, first template render).
2. Latency and throughput on one core: N sequential requests of `GET /healthz` (the baseline:
   routing and middleware only), of the signed-in home page `GET /` (session lookup, RBAC,
   template with the map component) and of `GET /api/identity/me` (session lookup, JSON);
   median and p95 in ms, requests per second, and each one's ratio against /healthz measured
   in the same run.

The server is pinned to one CPU and the client to another when the machine has two, so the
figures are those of one uvicorn worker on one core. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = int(os.environ.get("CIVIC_BENCH_REQUESTS", "300"))
WARM_UP = 20
START_TIMEOUT_S = 30.0
DEMO_USER = "admin"
DEMO_PASSWORD = "civic-demo-2026"  # noqa: S105 - the published demo password
CSRF_INPUT = re.compile(r'name="csrf_token"\s+value="([^"]+)"')

console = Console()


@dataclass(frozen=True)
class Timing:
    """Latencies of one endpoint, in seconds, and the wall time they took together."""

    label: str
    samples: list[float]
    wall_s: float

    @property
    def median_ms(self) -> float:
        """Median latency in milliseconds."""
        return statistics.median(self.samples) * 1000

    @property
    def p95_ms(self) -> float:
        """95th percentile latency in milliseconds."""
        return statistics.quantiles(self.samples, n=100, method="inclusive")[94] * 1000

    @property
    def per_second(self) -> float:
        """Sequential requests per second."""
        return len(self.samples) / self.wall_s


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def civic(args: list[str], env: dict[str, str]) -> float:
    """Run `python -m civic ARGS` to completion and return its duration in seconds."""
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "civic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"civic {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def cpus() -> tuple[set[int] | None, set[int] | None]:
    """Pick one CPU for the server and another for the client, when the OS lets us."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if len(available) >= 2:
        return {available[0]}, {available[1]}
    return {available[0]}, None


def start_server(
    env: dict[str, str], port: int, log_path: Path
) -> tuple[subprocess.Popen[bytes], float]:
    """Start the server; return it with the instant it was started (perf_counter)."""
    log = log_path.open("wb")
    started = time.perf_counter()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "civic", "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return server, started


def wait_for_first_page(
    server: subprocess.Popen[bytes], base_url: str, started: float, log_path: Path
) -> float:
    """Poll GET /login until it answers 200; return seconds since the process started."""
    with httpx.Client(base_url=base_url, trust_env=False, timeout=2.0) as client:
        while time.perf_counter() - started < START_TIMEOUT_S:
            if server.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                if client.get("/login").status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.005)
    raise RuntimeError(f"no 200 from /login within {START_TIMEOUT_S:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Ask the server to stop, and kill it if it does not."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def sign_in(client: httpx.Client) -> None:
    """Sign in as the demo admin through the login form, keeping the cookies in client."""
    page = client.get("/login")
    match = CSRF_INPUT.search(page.text)
    if page.status_code != 200 or match is None:
        raise RuntimeError(f"GET /login: {page.status_code}, no csrf_token field")
    answer = client.post(
        "/login",
        data={
            "csrf_token": match.group(1),
            "username": DEMO_USER,
            "password": DEMO_PASSWORD,
            "next": "/",
        },
    )
    if answer.status_code != 303 or "civic_session" not in client.cookies:
        raise RuntimeError(f"POST /login: {answer.status_code}, no session cookie")


def measure(client: httpx.Client, label: str, path: str, advance: Callable[[], None]) -> Timing:
    """Send WARM_UP then REQUESTS sequential GETs of path, each of which must answer 200."""
    for _ in range(WARM_UP):
        client.get(path)
    samples: list[float] = []
    wall_started = time.perf_counter()
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        advance()
    return Timing(label, samples, time.perf_counter() - wall_started)


def report(first_page_s: float, setup: dict[str, float], timings: list[Timing]) -> None:
    """Print the figures as tables."""
    start_table = Table(title="Start-up (fresh SQLite database)", title_justify="left")
    start_table.add_column("step")
    start_table.add_column("seconds", justify="right")
    for step, seconds in setup.items():
        start_table.add_row(step, f"{seconds:.2f}")
    start_table.add_row(
        "[bold]time to first page[/bold] (civic run → GET /login 200)",
        f"[bold]{first_page_s:.2f}[/bold]",
    )
    console.print(start_table)

    baseline = timings[0]
    table = Table(title=f"Latency, {REQUESTS} sequential requests each", title_justify="left")
    for column in ("GET", "median ms", "p95 ms", "req/s", "median ×", "p95 ×"):
        table.add_column(column, justify="left" if column == "GET" else "right", no_wrap=True)
    for timing in timings:
        table.add_row(
            timing.label,
            f"{timing.median_ms:.2f}",
            f"{timing.p95_ms:.2f}",
            f"{timing.per_second:.0f}",
            f"{timing.median_ms / baseline.median_ms:.2f}",
            f"{timing.p95_ms / baseline.p95_ms:.2f}",
        )
    console.print(table)
    console.print("× = ratio against /healthz measured in the same run (median, p95).")


def main() -> int:
    """Run the shell benchmark; return the exit status."""
    server_cpus, client_cpus = cpus()
    if server_cpus and client_cpus:
        pinned = f"server on CPU {min(server_cpus)}, client on CPU {min(client_cpus)}"
    elif server_cpus:
        pinned = f"server and client share CPU {min(server_cpus)}"
    else:
        pinned = "not pinned"
    console.print(
        f"[bold]Civic shell benchmark[/bold] · Python {platform.python_version()} · "
        f"{platform.machine()} · {os.cpu_count()} CPUs · {pinned}"
    )
    endpoints = [
        ("/healthz (baseline)", "/healthz"),
        ("/ (home, signed in)", "/"),
        ("/api/identity/me", "/api/identity/me"),
    ]
    with tempfile.TemporaryDirectory(prefix="civic-bench-") as temp:
        folder = Path(temp)
        env = {
            **os.environ,
            "CIVIC_DATABASE__URL": f"sqlite+aiosqlite:///{folder / 'civic.db'}",
            "CIVIC_VAR_DIR": str(folder / "var"),
            "CIVIC_ENV": "development",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = folder / "server.log"
        setup: dict[str, float] = {}
        server: subprocess.Popen[bytes] | None = None
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        try:
            with Progress(*columns, console=console, transient=True) as progress:
                step = progress.add_task("civic db upgrade", total=None)
                setup["civic db upgrade"] = civic(["db", "upgrade"], env)
                progress.update(step, description="civic demo load")
                setup["civic demo load"] = civic(["demo", "load"], env)
                progress.update(step, description="civic run → first page")
                server, started = start_server(env, port, log_path)
                if server_cpus:
                    os.sched_setaffinity(server.pid, server_cpus)
                if client_cpus:
                    os.sched_setaffinity(0, client_cpus)
                first_page_s = wait_for_first_page(server, base_url, started, log_path)
                progress.remove_task(step)

                timings: list[Timing] = []
                with httpx.Client(base_url=base_url, trust_env=False, timeout=10.0) as client:
                    for label, path in endpoints:
                        if path != "/healthz" and "civic_session" not in client.cookies:
                            sign_in(client)
                        task = progress.add_task(label, total=REQUESTS)
                        timings.append(
                            measure(client, label, path, partial(progress.advance, task))
                        )
        except RuntimeError as exc:
            console.print(f"[red]benchmark failed:[/red] {exc}")
            return 1
        finally:
            if server is not None:
                stop_server(server)
        report(first_page_s, setup, timings)
    return 0
