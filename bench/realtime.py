"""Benchmark of the realtime hub's fan-out.

Two figures:

1. In process: one topic with K subscribed connections; N messages published. Each publish
   numbers the message, encodes it once, keeps it for resuming and offers it to every
   connection's bounded queue after the organisation check. Baseline, measured in the same run:
   the least any fan-out must do — encode once and append the frame to K plain deques.
2. Over real WebSockets on 127.0.0.1: a server process (pinned to one CPU when there are two)
   pushes N messages to K clients through the hub's connections and senders, against a baseline
   endpoint that sends the same pre-encoded frames straight from one task per client. The clients
   run in this process on the other CPU and are often the limit; the ratio says what the hub
   costs on top of the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections import deque

from rich.console import Console
from rich.table import Table

from civic.kernel.identity import Principal
from civic.kernel.realtime.connection import Connection
from civic.kernel.realtime.hub import Hub, encode
from civic.kernel.settings import RealtimeSettings

console = Console()
SUBSCRIBERS = int(os.environ.get("CIVIC_BENCH_SUBSCRIBERS", "500"))
MESSAGES = int(os.environ.get("CIVIC_BENCH_MESSAGES", "2000"))
SOCKET_CLIENTS = int(os.environ.get("CIVIC_BENCH_WS_CLIENTS", "20"))
SOCKET_MESSAGES = int(os.environ.get("CIVIC_BENCH_WS_MESSAGES", "2000"))
PRINCIPAL = Principal(user_id=None, name="bench", organisation_id="org-1")


def position(i: int) -> dict[str, object]:
    return {"unit": f"engine-{i % 40}", "lat": 37.5 + i * 1e-5, "lon": 127.0, "speed": 42.0}


class Discard:
    """A sink that is never reached: the in-process figure stops at the queues."""

    async def send_text(self, data: str) -> None:
        raise AssertionError("not used")


def in_process() -> tuple[float, float, int]:
    """Return deliveries per second through the hub and through bare deques, and drops."""
    hub = Hub(RealtimeSettings(send_queue=MESSAGES + 10, buffer_size=1000))
    connections = [
        Connection(Discard(), PRINCIPAL, capacity=MESSAGES + 10, stats=hub.stats)
        for _ in range(SUBSCRIBERS)
    ]
    for connection in connections:
        hub.attach(connection)
        hub.subscribe(connection, "fleet", since=None, epoch=None)
    started = time.perf_counter()
    for i in range(MESSAGES):
        hub.publish("fleet", position(i), organisation_id="org-1", droppable=True)
    hub_rate = MESSAGES * SUBSCRIBERS / (time.perf_counter() - started)
    assert all(len(c) == MESSAGES + 1 for c in connections)

    queues: list[deque[str]] = [deque() for _ in range(SUBSCRIBERS)]
    started = time.perf_counter()
    for i in range(MESSAGES):
        frame = json.dumps({"topic": "fleet", "data": position(i)}, ensure_ascii=False)
        for queue in queues:
            queue.append(frame)
    base_rate = MESSAGES * SUBSCRIBERS / (time.perf_counter() - started)
    return hub_rate, base_rate, hub.stats.dropped


# -- the server process of the socket figure ---------------------------------------------


def serve(port: int) -> None:
    """Run the benchmark's WebSocket server (a child process)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    hub = Hub(RealtimeSettings(send_queue=100_000))
    plain: set[WebSocket] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def publish_all(count: int) -> None:
        for i in range(count):
            hub.publish("fleet", position(i), organisation_id="org-1", droppable=True)
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the senders run, as between real publishes

    async def send_plain(websocket: WebSocket, frames: list[str]) -> None:
        for frame in frames:
            await websocket.send_text(frame)

    async def through_hub(websocket: WebSocket) -> None:
        await websocket.accept()
        connection = Connection(websocket, PRINCIPAL, capacity=100_000, stats=hub.stats)
        hub.attach(connection)
        hub.subscribe(connection, "fleet", since=None, epoch=None)
        sender = asyncio.create_task(connection.run_sender())
        try:
            async for text in websocket.iter_text():
                task = asyncio.create_task(publish_all(int(text.split()[1])))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            hub.detach(connection)
            sender.cancel()

    async def direct(websocket: WebSocket) -> None:
        await websocket.accept()
        plain.add(websocket)
        try:
            async for text in websocket.iter_text():
                count = int(text.split()[1])
                frames = [
                    encode({"type": "message", "topic": "fleet", "seq": i + 1, "data": position(i)})
                    for i in range(count)
                ]
                for client in list(plain):
                    task = asyncio.create_task(send_plain(client, frames))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        finally:
            plain.discard(websocket)

    app = Starlette(routes=[WebSocketRoute("/hub", through_hub), WebSocketRoute("/plain", direct)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def over_sockets(port: int, path: str) -> float:
    """Return frames per second received by all clients of path together."""
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}{path}"
    clients = [await connect(url, proxy=None, max_queue=None) for _ in range(SOCKET_CLIENTS)]
    try:
        if path == "/hub":
            for client in clients:
                await client.recv()  # the "subscribed" frame

        async def drain(client: object) -> None:
            for _ in range(SOCKET_MESSAGES):
                await client.recv()  # type: ignore[attr-defined]

        started = time.perf_counter()
        await clients[0].send(f"go {SOCKET_MESSAGES}")
        async with asyncio.timeout(120):
            await asyncio.gather(*(drain(c) for c in clients))
        return SOCKET_CLIENTS * SOCKET_MESSAGES / (time.perf_counter() - started)
    finally:
        for client in clients:
            await client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _socket_figures() -> tuple[float, float]:
    port = _free_port()
    command = [sys.executable, "-m", "bench.realtime", "serve", str(port)]
    if (os.cpu_count() or 1) >= 2:
        command = ["taskset", "-c", "0", *command]
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {1})
    server = await asyncio.create_subprocess_exec(*command)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            await asyncio.sleep(0.05)
        plain = await over_sockets(port, "/plain")
        hub = await over_sockets(port, "/hub")
        return hub, plain
    finally:
        server.terminate()
        async with asyncio.timeout(10):
            await server.wait()


def main() -> int:
    """Print the hub's fan-out rates and their ratio to the baselines."""
    hub_rate, base_rate, dropped = in_process()
    table = Table(title=f"Fan-out in process ({SUBSCRIBERS} subscribers × {MESSAGES} messages)")
    table.add_column("path")
    table.add_column("deliveries/s", justify="right")
    table.add_column("× baseline", justify="right")
    table.add_row("encode + append to deques (baseline)", f"{base_rate:,.0f}", "1.00")
    table.add_row(
        "Hub.publish → filter → bounded queues", f"{hub_rate:,.0f}", f"{hub_rate / base_rate:.2f}"
    )
    console.print(table)
    console.print(f"dropped: {dropped} (queues were large enough)")
    hub_ws, plain_ws = asyncio.run(_socket_figures())
    table = Table(
        title=f"Over WebSockets ({SOCKET_CLIENTS} clients × {SOCKET_MESSAGES} messages, 127.0.0.1)"
    )
    table.add_column("path")
    table.add_column("frames/s received", justify="right")
    table.add_column("× baseline", justify="right")
    table.add_row("pre-encoded frames sent per client (baseline)", f"{plain_ws:,.0f}", "1.00")
    table.add_row("Hub.publish → connection senders", f"{hub_ws:,.0f}", f"{hub_ws / plain_ws:.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        sys.exit(main())
