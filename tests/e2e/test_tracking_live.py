"""A dispatcher watches the live map while a fire engine reports that it moved."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import expect

from civic.kernel.db import transaction, utcnow
from civic.kernel.identity import User, find_user, issue_api_token
from tests.e2e.conftest import Account, LiveServer, WatchedPage
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e


async def _token(app: FastAPI, account: Account) -> str:
    async with transaction(app.state.kernel.sessions) as session:
        user = await find_user(session, username=account.username)
        assert isinstance(user, User)
        return await issue_api_token(session, user=user, name="e2e tracking")


async def _report(server: LiveServer, token: str, subject: str, lat: float, lon: float) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.post(
            "/api/tracking/positions",
            json={
                "positions": [
                    {
                        "kind": "fire_unit",
                        "subject_id": subject,
                        "name": "창원 펌프 1",
                        "lat": lat,
                        "lon": lon,
                        "speed_mps": 14.0,
                        "time": utcnow().isoformat(),
                    }
                ]
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1


async def test_a_live_position_moves_on_the_map(
    watched_page: WatchedPage,
    live_server: LiveServer,
    account: Account,
    app: FastAPI,
    screenshots: Path,
) -> None:
    page = watched_page.page
    token = await _token(app, account)
    subject = f"engine-{uuid.uuid4().hex[:6]}"
    await _report(live_server, token, subject, 35.2279, 128.6811)

    await page.goto("/login?next=/tracking/live")
    await sign_in(page, account)
    await expect(page).to_have_url(f"{live_server.url}/tracking/live")
    await expect(page.get_by_role("heading", level=1)).to_have_text("실시간 위치")
    await expect(page.locator(".tracking-live")).to_have_attribute("data-tracking-ready", "1")
    await expect(page.locator("html")).to_have_attribute("data-live-status", "open")
    await page.evaluate("window.mapWasNotReloaded = true")

    marker = page.locator(f'.tracking-marker[data-subject="fire_unit/{subject}"]')
    await expect(marker).to_have_attribute("data-lat", "35.2279")
    row = page.locator(f'tr[data-subject="fire_unit/{subject}"]')
    await expect(row).to_contain_text("창원 펌프 1")
    await expect(row).to_contain_text("수신 중")
    before = await marker.bounding_box()
    assert before is not None

    # About 1.1 km north-east: the marker must travel across the map, no reload.
    await _report(live_server, token, subject, 35.2359, 128.6901)
    await expect(marker).to_have_attribute("data-lat", "35.2359")
    await expect(marker).to_have_attribute("data-lon", "128.6901")
    after = await marker.bounding_box()
    assert after is not None
    assert after["y"] < before["y"] - 5, "north is up: the marker should have gone up"
    assert after["x"] > before["x"] + 5, "east is right: the marker should have gone right"
    assert await page.evaluate("window.mapWasNotReloaded === true")
    await page.screenshot(path=screenshots / "tracking-live.png", full_page=True)
    watched_page.expect_clean()
