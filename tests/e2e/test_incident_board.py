"""A dispatcher watches the incident board while a new incident arrives, without reloading."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import expect

from civic.kernel.db import transaction
from civic.kernel.identity import User, find_user, issue_api_token
from civic.kernel.relay import relay_of
from tests.e2e.conftest import Account, LiveServer, WatchedPage
from tests.e2e.test_shell import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("only_the_live_server_relays")]


@pytest.fixture
async def only_the_live_server_relays(app: FastAPI) -> None:
    """Stop the relay of the in-process app that made the account: it shares the database.

    Two relays on one outbox compete for each event; one taken by the in-process app would reach
    its hub, where no browser listens, instead of the live server's.
    """
    await relay_of(app.state.kernel).stop()


async def _token(app: FastAPI, account: Account) -> str:
    async with transaction(app.state.kernel.sessions) as session:
        user = await find_user(session, username=account.username)
        assert isinstance(user, User)
        return await issue_api_token(session, user=user, name="e2e incident board")


async def test_the_board_shows_a_new_incident_live(
    watched_page: WatchedPage,
    live_server: LiveServer,
    account: Account,
    app: FastAPI,
    screenshots: Path,
) -> None:
    page = watched_page.page
    token = await _token(app, account)
    await page.goto("/login?next=/incidents/")
    await sign_in(page, account)
    await expect(page).to_have_url(f"{live_server.url}/incidents/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("사건 현황판")
    await expect(page.locator("html")).to_have_attribute("data-live-status", "open")
    await expect(page.get_by_text("진행 중인 사건이 없습니다.")).to_be_visible()
    # Marks this very document: a reload would lose it.
    await page.evaluate("window.boardWasNotReloaded = true")

    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        answer = await http.post(
            "/api/incidents",
            json={
                "type": "ems",
                "subtype": "심정지",
                "location": {"latitude": 37.5665, "longitude": 126.978},
                "address": "서울 중구 세종대로 110",
                "reporter_phone": "010-2222-3333",
            },
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
        )
    assert answer.status_code == 201, answer.text
    incident = answer.json()

    row = page.locator(f'tr[data-incident-id="{incident["id"]}"]')
    await expect(row).to_contain_text(incident["number"])
    await expect(row).to_contain_text("구급 · 심정지")
    await expect(row).to_contain_text("접수")
    await expect(row).to_contain_text("서울 중구 세종대로 110")
    await expect(page.locator("#incident-count")).to_have_text("1")
    await expect(page.get_by_text("진행 중인 사건이 없습니다.")).to_be_hidden()
    marker = page.locator("#incident-map path.leaflet-interactive[stroke='#8a1c1c']")
    await expect(marker).to_have_count(1)
    assert await page.evaluate("window.boardWasNotReloaded === true")
    assert "010-2222-3333" not in await page.content()
    await page.screenshot(path=screenshots / "incident-board.png", full_page=True)

    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        closed = await http.post(
            f"/api/incidents/{incident['id']}/status",
            json={"status": "closed"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert closed.status_code == 200
    await expect(row).to_have_count(0)
    await expect(marker).to_have_count(0)
    watched_page.expect_clean()


async def test_a_dispatcher_receives_a_call_on_the_board_and_follows_it(
    watched_page: WatchedPage, live_server: LiveServer, account: Account, app: FastAPI
) -> None:
    page = watched_page.page
    token = await _token(app, account)
    await page.goto("/login?next=/incidents/")
    await sign_in(page, account)
    await expect(page.locator("html")).to_have_attribute("data-live-status", "open")

    await page.get_by_text("새 사건 접수").click()
    await page.locator("#incident-form select[name=type]").select_option("rescue")
    await page.get_by_label("세부 유형").fill("승강기 갇힘")
    await page.get_by_label("주소").fill("서울 양천구 목동서로 159")
    await page.get_by_label("위도").fill("37.5270")
    await page.get_by_label("신고자 이름").fill("이신고")
    await page.get_by_label("신고자 전화").fill("010-5555-6666")
    watched_page.allow_console_error(r"status of 422\b", url=f"{live_server.url}/api/incidents")
    # Half a place is refused with the server's message, in the form.
    await page.get_by_role("button", name="접수", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("longitude")
    await page.get_by_label("경도").fill("126.8750")
    await page.get_by_role("button", name="접수", exact=True).click()
    row = page.locator("#incident-rows tr", has_text="승강기 갇힘")
    await expect(row).to_have_count(1)
    await expect(page.get_by_role("alert")).to_be_hidden()

    await row.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("사건 20")
    await expect(page.locator("html")).to_have_attribute("data-live-status", "open")
    incident_id = await page.locator("#incident-detail").get_attribute("data-incident-id")
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        linked = await http.post(
            f"/api/incidents/{incident_id}/units",
            json={"unit_id": "rescue-2", "name": "양천 구조 2"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert linked.status_code == 200
    # Another dispatcher's change arrives live: the timeline and the units follow it.
    await expect(page.locator("#incident-timeline li")).to_have_count(2)
    await expect(page.locator("#incident-timeline")).to_contain_text("출동")
    await expect(page.locator("#incident-units")).to_contain_text("양천 구조 2")
    await expect(page.locator("#incident-status")).to_have_text("출동")

    await page.get_by_role("button", name="연락처 보기 (기록됨)").click()
    await expect(page.locator("#reporter-contact")).to_have_text("이신고 · 010-5555-6666")
    await page.get_by_label("메모 추가").fill("승강기 업체 연락함")
    await page.get_by_role("button", name="추가").click()
    await expect(page.locator("#incident-notes")).to_contain_text("승강기 업체 연락함")
    await page.locator("#status-form select").select_option("on_scene")
    await page.get_by_role("button", name="변경").click()
    await expect(page.locator("#incident-status")).to_have_text("현장 도착")
    watched_page.expect_clean()


# Lets the test hold the page's reconnection back: while held, new sockets go to a closed port.
HOLDABLE_SOCKETS = """
(() => {
  const Real = window.WebSocket;
  window.heldSockets = { hold: false, opened: [] };
  function Holdable(url, protocols) {
    const socket = new Real(window.heldSockets.hold ? "ws://127.0.0.1:9/held" : url, protocols);
    window.heldSockets.opened.push(socket);
    return socket;
  }
  Holdable.prototype = Real.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Holdable[name] = Real[name];
  window.WebSocket = Holdable;
})();
"""


async def test_a_board_that_lost_its_socket_resumes_what_it_missed(
    watched_page: WatchedPage, live_server: LiveServer, account: Account, app: FastAPI
) -> None:
    page = watched_page.page
    # Chromium refuses the port outright; the error names no script (it comes from the wrapper).
    watched_page.allow_console_error(r"127\.0\.0\.1:9/held", url="")

    reloads: list[str] = []
    page.on("request", lambda r: reloads.append(r.url) if "/api/incidents?" in r.url else None)
    await page.add_init_script(HOLDABLE_SOCKETS)
    token = await _token(app, account)
    auth = {"Authorization": f"Bearer {token}"}
    await page.goto("/login?next=/incidents/")
    await sign_in(page, account)
    await expect(page.locator("html")).to_have_attribute("data-live-status", "open")

    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        before = await http.post(
            "/api/incidents",
            json={"type": "fire", "address": "연결 중에 접수"},
            headers=auth | {"Idempotency-Key": uuid.uuid4().hex},
        )
        await expect(page.locator("#incident-rows")).to_contain_text("연결 중에 접수")
        await page.evaluate(
            "window.heldSockets.hold = true; window.heldSockets.opened.at(-1).close()"
        )
        await expect(page.locator("html")).not_to_have_attribute("data-live-status", "open")
        missed = await http.post(
            "/api/incidents",
            json={"type": "ems", "address": "끊긴 사이에 접수"},
            headers=auth | {"Idempotency-Key": uuid.uuid4().hex},
        )
        closed = await http.post(
            f"/api/incidents/{before.json()['id']}/status", json={"status": "closed"}, headers=auth
        )
    assert (missed.status_code, closed.status_code) == (201, 200)
    # The hub has what was missed once the outbox is relayed; then let the page reconnect.
    await page.wait_for_timeout(1000)
    await page.evaluate("window.heldSockets.hold = false")

    await expect(page.locator("#incident-rows")).to_contain_text("끊긴 사이에 접수")
    await expect(page.locator("#incident-rows")).not_to_contain_text("연결 중에 접수")
    await expect(page.locator("html")).to_have_attribute("data-live-status", "open")
    assert reloads == []  # resumed from its sequence numbers, not reloaded from the API
    watched_page.expect_clean()
