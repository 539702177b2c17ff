"""A person uses the shell in a real browser: sign in, the map, errors, language, keyboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import Account, LiveServer, WatchedPage

pytestmark = pytest.mark.e2e

WRONG_PASSWORD = "아이디 또는 비밀번호가 맞지 않습니다."
SKIP_LINK = "본문으로 건너뛰기"


async def sign_in(page: Page, account: Account, *, password: str | None = None) -> None:
    await page.get_by_label("아이디").fill(account.username)
    await page.get_by_label("비밀번호").fill(account.password if password is None else password)
    await page.get_by_role("button", name="로그인").click()


def boundaries_available(server: LiveServer) -> bool:
    data_dir = server.settings.data_dir
    return data_dir is not None and (data_dir / "geo" / "kr_provinces_2013.geojson").is_file()


@pytest.mark.parametrize("live_server", ["shared-data", "no-data"], indirect=True)
async def test_sign_in_leads_home_to_the_map(
    watched_page: WatchedPage, live_server: LiveServer, account: Account, screenshots: Path
) -> None:
    page = watched_page.page
    await page.goto("/")
    await expect(page).to_have_url(f"{live_server.url}/login")

    await sign_in(page, account)

    await expect(page).to_have_url(f"{live_server.url}/")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("안녕하세요")
    civic_map = page.locator(".civic-map")
    await expect(civic_map).to_have_class(re.compile(r"(^|\s)leaflet-container(\s|$)"))
    if boundaries_available(live_server):
        await expect(civic_map).to_have_attribute("data-layer", "boundaries")
        shapes = civic_map.locator("path.leaflet-interactive")
        await expect(shapes.first).to_be_attached()
        assert await shapes.count() > 0
    else:
        await expect(civic_map).to_have_attribute("data-layer", "graticule")
        assert await civic_map.locator("path").count() > 0
    name = "home.png" if boundaries_available(live_server) else "home-graticule.png"
    await page.screenshot(path=screenshots / name, full_page=True)
    watched_page.expect_clean()


async def test_wrong_password_says_so_in_korean(
    watched_page: WatchedPage, live_server: LiveServer, account: Account
) -> None:
    page = watched_page.page
    # The refused form comes back as 401, which Chromium reports on the console.
    watched_page.allow_console_error(r"status of 401\b", url=f"{live_server.url}/login")
    await page.goto("/login")

    await sign_in(page, account, password="not the password")

    await expect(page.get_by_role("alert")).to_have_text(WRONG_PASSWORD)
    await expect(page).to_have_url(f"{live_server.url}/login")
    await expect(page.get_by_label("아이디")).to_have_value(account.username)
    watched_page.expect_clean()


async def test_language_link_switches_to_english(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    page = watched_page.page
    await page.goto("/login")
    await expect(page.locator("html")).to_have_attribute("lang", "ko")

    await page.get_by_role("link", name="English").click()

    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page).to_have_url(f"{live_server.url}/login")
    await expect(page.get_by_role("link", name="English")).to_have_attribute("aria-current", "true")
    watched_page.expect_clean()


async def test_tab_first_reaches_the_skip_link(
    watched_page: WatchedPage, live_server: LiveServer, account: Account
) -> None:
    page = watched_page.page
    await page.goto("/login")
    await sign_in(page, account)
    await expect(page).to_have_url(f"{live_server.url}/")

    await page.keyboard.press("Tab")

    skip_link = page.get_by_role("link", name=SKIP_LINK)
    await expect(skip_link).to_be_focused()
    await expect(skip_link).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect(page.locator("main#main")).to_be_focused()
    watched_page.expect_clean()
