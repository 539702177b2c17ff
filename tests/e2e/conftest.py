"""Browser fixtures: a live uvicorn server in a thread, Debian's Chromium and a watched page."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, ConsoleMessage, Error, Page, Request, async_playwright

from civic.app import create_app
from civic.kernel.identity import Role
from civic.settings import Settings
from tests.conftest import IN_CI
from tests.factories import PASSWORD, make_organisation, make_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOST = "127.0.0.1"
HOSTLESS_SCHEMES = frozenset({"data", "blob", "about"})
STARTUP_SECONDS = 20.0
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "e2e"


@dataclass(frozen=True)
class Account:
    """Someone who can sign in to the live server."""

    username: str
    password: str


@dataclass(frozen=True)
class LiveServer:
    """A platform served over real HTTP on 127.0.0.1."""

    url: str
    settings: Settings


@dataclass
class WatchedPage:
    """A browser page and what went wrong on it: console errors, page errors, foreign requests."""

    page: Page
    problems: list[str] = field(default_factory=list)
    allowed: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def allow_console_error(self, text: str, *, url: str) -> None:
        """Accept a console error the test expects, matched by its text and the URL it names."""
        self.allowed.append((re.compile(text), url))

    def is_allowed(self, message: ConsoleMessage) -> bool:
        """Whether a console error is one the test said to expect."""
        url = message.location.get("url", "")
        return any(text.search(message.text) and url == at for text, at in self.allowed)

    def expect_clean(self) -> None:
        """Fail the test when the browser logged an error or asked a host other than ours."""
        problems, self.problems = self.problems, []
        if problems:
            pytest.fail("the browser saw problems:\n" + "\n".join(problems))


def _is_foreign(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in HOSTLESS_SCHEMES and parts.hostname != LOCAL_HOST


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOCAL_HOST, 0))
    return sock


@pytest.fixture
async def account(app: FastAPI) -> Account:
    """An administrator, created through the in-process app on the test's own event loop."""
    organisation = await make_organisation(app)
    user = await make_user(app, organisation=organisation, roles={"*": [Role.ADMIN]})
    return Account(username=user.username, password=PASSWORD)


@pytest.fixture
async def live_server(
    settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[LiveServer]:
    """Serve a separate app instance from a thread with its own event loop and database engine."""
    # Indirect parameter "no-data" serves a platform without the shared data folder.
    if getattr(request, "param", None) == "no-data":
        settings = settings.model_copy(update={"data_dir": None})
    server_app = create_app(settings, services=[])
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        server_app, host=LOCAL_HOST, port=port, log_config=None, lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="civic-e2e-server", daemon=True
    )
    thread.start()
    url = f"http://{LOCAL_HOST}:{port}"
    try:
        await _wait_until_healthy(url, thread)
        yield LiveServer(url=url, settings=settings)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, STARTUP_SECONDS)
        sock.close()
        assert not thread.is_alive(), "the live server did not stop"


async def _wait_until_healthy(url: str, thread: threading.Thread) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    last_error = "no answer yet"
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while loop.time() < deadline:
            if not thread.is_alive():
                pytest.fail("the live server stopped while starting (see its log above)")
            try:
                answer = await http.get("/healthz")
                if answer.status_code == 200:
                    return
                last_error = f"/healthz answered {answer.status_code}"
            except httpx.TransportError as exc:
                last_error = repr(exc)
            await asyncio.sleep(0.05)
    pytest.fail(f"the live server did not answer /healthz within {STARTUP_SECONDS}s: {last_error}")


def _require_chromium() -> None:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: install Debian's chromium package for the browser tests"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless; missing, it fails the run in CI and skips it elsewhere."""
    _require_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def watched_page(browser: Browser, live_server: LiveServer) -> AsyncIterator[WatchedPage]:
    """A Korean-speaking page on the live server; anything foreign or erroneous is recorded."""
    context = await browser.new_context(
        base_url=live_server.url, locale="ko-KR", viewport={"width": 1280, "height": 900}
    )
    page = await context.new_page()
    watched = WatchedPage(page=page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not watched.is_allowed(message):
            watched.problems.append(f"console error: {message.text} ({message.location})")

    def on_page_error(error: Error) -> None:
        watched.problems.append(f"uncaught page error: {error}")

    def on_request(request: Request) -> None:
        if _is_foreign(request.url):
            watched.problems.append(f"request to a host other than {LOCAL_HOST}: {request.url}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("request", on_request)
    # Nothing may leave this machine, whatever a page asks for.
    await context.route(_is_foreign, lambda route: route.abort())
    try:
        yield watched
    finally:
        await context.close()
    if watched.problems:
        pytest.fail("the browser saw problems:\n" + "\n".join(watched.problems))


@pytest.fixture
def screenshots() -> Path:
    """The git-ignored folder where screenshots are kept for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
