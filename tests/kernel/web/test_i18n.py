import httpx
import pytest
from babel.messages.pofile import read_po

from civic.kernel.web.i18n import LOCALE_DIR


@pytest.mark.parametrize("lang", ["en", "zh", "ja"])
def test_every_message_is_translated(lang: str) -> None:
    with (LOCALE_DIR / "messages.pot").open("rb") as file:
        wanted = {m.id for m in read_po(file) if m.id}
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as file:
        done = {m.id for m in read_po(file) if m.id and m.string}
    assert wanted - done == set()


async def test_pages_are_korean_first(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert '<html lang="ko">' in page.text
    assert "로그인" in page.text


async def test_language_follows_the_choice_then_the_browser(client: httpx.AsyncClient) -> None:
    english = await client.get("/login", params={"lang": "en"})
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    japanese = await client.get("/login", headers={"accept-language": "ja-JP,ja;q=0.9"})
    assert '<html lang="ja">' in japanese.text and "ログイン" in japanese.text
    chosen = await client.get("/lang/zh", params={"back": "/login"})
    assert chosen.status_code == 303 and chosen.headers["location"] == "/login"
    chinese = await client.get("/login")
    assert '<html lang="zh">' in chinese.text and "登录" in chinese.text
    assert (await client.get("/lang/xx")).status_code == 404
