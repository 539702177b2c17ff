"""Shared fixtures: one throwaway database per run (SQLite or PostgreSQL), apps and clients."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from civic.app import create_app
from civic.kernel import migrations
from civic.kernel.db import create_engine, transaction
from civic.kernel.sessions import LoginAttempt
from civic.settings import Settings

DB_KIND = os.environ.get("CIVIC_TEST_DATABASE", "sqlite")
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get(
    "CIVIC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_SECRET = "test-secret-" + "x" * 40
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_report_header() -> str:
    return f"civic database leg: {DB_KIND} (CI={IN_CI})"


def need_server(what: str, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a server a test needs is missing."""
    message = f"{what} is not reachable: {reason}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


async def _postgres_database() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        need_server("PostgreSQL on localhost:5432", repr(exc))
    name = f"civic_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A migrated throwaway database for this run."""
    if DB_KIND == "postgres":
        databases = _postgres_database()
        url = await anext(databases)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'civic.db'}"
        databases = None
    engine = create_engine(url)
    await migrations.upgrade(engine)
    await engine.dispose()
    yield url
    if databases is not None:
        await databases.aclose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings of a test platform on the run's database."""
    return Settings(
        env="test",
        var_dir=tmp_path,
        data_dir=SHARED_DATA if SHARED_DATA.is_dir() else None,
        database={"url": database_url},
        security={"secret_key": TEST_SECRET},
        # Port 0: test runs side by side (and a running `make run`) never fight over 1884.
        mqtt={"embedded_port": 0},
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """A started platform with no services; the login attempt counter starts empty."""
    application = create_app(settings, services=[])
    async with application.router.lifespan_context(application):
        async with transaction(application.state.kernel.sessions) as session:
            await session.execute(delete(LoginAttempt))
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    assert not leaked, f"tasks left running: {leaked}"


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_from(client: httpx.AsyncClient, path: str = "/login") -> str:
    """Open a page and return the CSRF token it embeds."""
    page = await client.get(path, headers={"accept": "text/html"})
    match = CSRF_FIELD.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """Sign in through the login form, as a browser does."""
    token = await csrf_from(client)
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        headers={"accept": "text/html"},
    )
