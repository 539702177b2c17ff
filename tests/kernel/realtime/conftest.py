"""Fixtures of the live update tests: the app served by uvicorn on 127.0.0.1, WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from civic.kernel.db import transaction
from civic.kernel.identity import Organisation, Role, User, issue_api_token
from civic.kernel.realtime import Hub, realtime_of
from civic.kernel.sessions import start_browser_session
from tests.factories import make_organisation, make_user
from tests.waiting import eventually

RECEIVE_DEADLINE_S = 5.0


@dataclass(frozen=True)
class Served:
    """The test app over real HTTP and WebSocket on 127.0.0.1."""

    app: FastAPI
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hub(self) -> Hub:
        return realtime_of(self.app.state.kernel)


async def serve(app: FastAPI) -> AsyncIterator[Served]:
    """Serve an app whose lifespan already runs, on this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, host="127.0.0.1", lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="test-uvicorn")
    try:
        await eventually(lambda: server.started or task.done())
        assert server.started, "uvicorn did not start"
        yield Served(app=app, port=sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[Served]:
    """The default test app, served."""
    async for running in serve(app):
        yield running


class LiveClient:
    """A WebSocket client speaking the hub's JSON protocol."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, **message: Any) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        async with asyncio.timeout(RECEIVE_DEADLINE_S):
            document: dict[str, Any] = json.loads(await self.connection.recv())
        return document

    async def subscribe(self, topic: str, **extra: Any) -> dict[str, Any]:
        await self.send(type="subscribe", topic=topic, **extra)
        return await self.receive()

    async def close_code(self) -> int | None:
        """Wait for the server to close the connection; return its close code."""
        async with asyncio.timeout(RECEIVE_DEADLINE_S):
            await self.connection.wait_closed()
        return self.connection.close_code


async def open_live(
    served: Served,
    *,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    query: str = "",
) -> LiveClient:
    """Connect to /ws with these headers, as a browser on origin would (None: no Origin)."""
    connection = await connect(
        served.ws_url + query,
        additional_headers=headers or {},
        origin=origin,  # type: ignore[arg-type]
        proxy=None,
        open_timeout=RECEIVE_DEADLINE_S,
    )
    return LiveClient(connection)


@dataclass(frozen=True)
class Person:
    """A user with a browser session cookie and a bearer token."""

    user: User
    organisation: Organisation
    cookie: str
    token: str

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"civic_session={self.cookie}"}

    @property
    def bearer_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_person(
    app: FastAPI, *, roles: dict[str, list[Role]], organisation: Organisation | None = None
) -> Person:
    """Create a user in an organisation (a new one unless given) with a session and a token."""
    organisation = organisation or await make_organisation(app)
    user = await make_user(app, organisation=organisation, roles=roles)
    async with transaction(app.state.kernel.sessions) as session:
        loaded = await session.get(User, user.id)
        assert loaded is not None
        cookie = await start_browser_session(
            session, user=loaded, lifetime=timedelta(hours=1), ip="127.0.0.1", user_agent="test"
        )
        token = await issue_api_token(session, user=loaded, name="realtime tests")
    return Person(user=user, organisation=organisation, cookie=cookie, token=token)
