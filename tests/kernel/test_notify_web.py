"""The development inbox page and API, push subscriptions and own preferences over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from py_vapid import Vapid
from sqlalchemy import select

from civic.kernel.audit import AuditEntry
from civic.kernel.db import transaction
from civic.kernel.identity import ALL_SERVICES, Role, User, issue_api_token
from civic.kernel.notify import Recipient, Urgency
from civic.settings import Settings
from tests.conftest import login
from tests.factories import PASSWORD, make_organisation, make_user
from tests.kernel.notify_servers import Browser, Clock, capture_server, notifier, notify_app
from tests.kernel.test_notify import a_phone, send

HREF = re.compile(r'<a href="([^"]+)">')


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def person(app: FastAPI, roles: dict[str, list[Role]] | None = None) -> tuple[User, str]:
    """A user and a bearer token of theirs."""
    organisation = await make_organisation(app)
    user = await make_user(app, organisation=organisation, roles=roles or {"x": [Role.CITIZEN]})
    async with transaction(app.state.kernel.sessions) as session:
        loaded = await session.get(User, user.id)
        assert loaded is not None
        token = await issue_api_token(session, user=loaded, name="notify tests")
    return user, token


async def test_the_dev_inbox_page_shows_messages_whose_links_work(settings: Settings) -> None:
    async with notify_app(settings) as app, client_of(app) as client:
        user, _ = await person(app)
        phone = a_phone()
        await send(
            app,
            Recipient(phone=phone, name="박서준"),
            context={
                "title": "상황 안내",
                "text": "119 신고 상황",
                "link": "http://testserver/healthz",
            },
        )
        await notifier(app).deliver_due()
        assert (await login(client, user.username, PASSWORD)).status_code == 303
        dashed = f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
        page = await client.get("/dev/inbox", params={"address": dashed})
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "개발용 받은편지함" in page.text and "박서준" in page.text
        assert "badge-sent" in page.text and "[상황 안내] 119 신고 상황" in page.text
        links = HREF.findall(page.text)
        assert "http://testserver/healthz" in links
        followed = await client.get(links[links.index("http://testserver/healthz")])
        assert followed.status_code == 200 and followed.json() == {"status": "ok"}


async def test_the_dev_inbox_wants_a_signed_in_person(settings: Settings) -> None:
    async with notify_app(settings) as app, client_of(app) as client:
        page = await client.get("/dev/inbox", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        api = await client.get("/api/dev/inbox")
        assert api.status_code == 401 and api.json()["status"] == 401


async def test_the_dev_inbox_api_lists_newest_first_with_status(settings: Settings) -> None:
    noon = Clock(datetime(2026, 11, 25, 3, 0, tzinfo=UTC))
    async with (
        notify_app(settings, clock=noon, quiet_hours="09:00-18:00") as app,
        client_of(app) as client,
    ):
        _, token = await person(app)
        auth = {"Authorization": f"Bearer {token}"}
        phone = a_phone()
        await send(app, Recipient(phone=phone), context={"title": "하나", "text": "첫째"})
        await send(
            app,
            Recipient(phone=phone),
            context={"title": "둘", "text": "둘째"},
            urgency=Urgency.EMERGENCY,
            channels=["sms"],
        )
        await notifier(app).deliver_due()
        answer = await client.get("/api/dev/inbox", params={"address": phone}, headers=auth)
        assert answer.status_code == 200
        items = answer.json()["items"]
        assert [(i["body"], i["status"], i["urgency"]) for i in items] == [
            ("[둘] 둘째", "sent", "emergency"),
            ("[하나] 첫째", "held", "normal"),
        ]
        assert items[0]["received_at"] and items[1]["received_at"] is None
        assert items[1]["held_until"]
        held = await client.get(
            "/api/dev/inbox", params={"address": phone, "status": "held"}, headers=auth
        )
        assert [i["body"] for i in held.json()["items"]] == ["[하나] 첫째"]
        other = await client.get(
            "/api/dev/inbox", params={"address": phone, "template": "alarm"}, headers=auth
        )
        assert other.json()["items"] == []
        bad = await client.get("/api/dev/inbox", params={"status": "lost"}, headers=auth)
        assert bad.status_code == 422
        async with app.state.kernel.sessions() as session:
            read = await session.scalar(
                select(AuditEntry).where(AuditEntry.subject_type == "notify_dev_inbox")
            )
        assert read is not None and read.detail == {"fields": ["address"]}


async def test_the_dev_inbox_is_gone_when_turned_off(settings: Settings) -> None:
    async with notify_app(settings, dev_inbox=False) as app, client_of(app) as client:
        _, token = await person(app)
        answer = await client.get("/api/dev/inbox", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 404 and "DEV_INBOX" in answer.json()["detail"]


async def test_in_production_only_administrators_see_the_dev_inbox(settings: Settings) -> None:
    async with (
        notify_app(
            settings,
            top={"env": "production"},
            dev_inbox=True,
            allow_dev_inbox_in_production=True,
        ) as app,
        client_of(app) as client,
    ):
        _, citizen = await person(app)
        _, admin = await person(app, {ALL_SERVICES: [Role.ADMIN]})
        refused = await client.get("/api/dev/inbox", headers={"Authorization": f"Bearer {citizen}"})
        assert refused.status_code == 403
        allowed = await client.get("/api/dev/inbox", headers={"Authorization": f"Bearer {admin}"})
        assert allowed.status_code == 200


async def test_a_browser_registers_for_push_and_receives_one(settings: Settings) -> None:
    vapid = Vapid()
    vapid.generate_keys()
    browser = Browser()
    async with capture_server() as push_service:
        push_service.default_status = 201
        async with (
            notify_app(
                settings,
                channels=["push"],
                push={"vapid_private_key": vapid.private_pem().decode()},
            ) as app,
            client_of(app) as client,
        ):
            user, token = await person(app)
            auth = {"Authorization": f"Bearer {token}"}
            key = await client.get("/api/notify/push/key")
            assert key.json() == {"public_key": notifier(app).push_public_key}
            subscription = {
                "endpoint": push_service.url("/wpush/v2/abc"),
                "expirationTime": None,
                "keys": browser.keys(),
            }
            created = await client.post(
                "/api/notify/push/subscriptions", json=subscription, headers=auth
            )
            assert created.status_code == 201, created.text
            broken = {**subscription, "keys": {"p256dh": "AAAA", "auth": "short"}}
            refused = await client.post("/api/notify/push/subscriptions", json=broken, headers=auth)
            assert refused.status_code == 422 and "p256dh" in refused.text
            await send(
                app, Recipient(user_id=user.id), context={"title": "호출", "text": "응답해 주세요"}
            )
            await notifier(app).deliver_due()
            [request] = push_service.requests
            assert request.path == "/wpush/v2/abc"
            assert browser.decrypt(request.body)["title"] == "호출"
            listed = await client.get("/api/notify/push/subscriptions", headers=auth)
            [row] = listed.json()
            path = f"/api/notify/push/subscriptions/{row['id']}"
            assert (await client.delete(path, headers=auth)).status_code == 204
            assert (await client.delete(path, headers=auth)).status_code == 404


async def test_push_key_is_absent_without_vapid(settings: Settings) -> None:
    async with notify_app(settings) as app, client_of(app) as client:
        answer = await client.get("/api/notify/push/key")
        assert answer.status_code == 404 and "VAPID" in answer.json()["detail"]


async def test_people_set_their_own_preferences(settings: Settings) -> None:
    async with notify_app(settings) as app, client_of(app) as client:
        user, token = await person(app)
        auth = {"Authorization": f"Bearer {token}"}
        empty = await client.get("/api/notify/preferences", headers=auth)
        assert empty.json() == {
            "channels": [],
            "language": None,
            "quiet_hours": None,
            "email": None,
        }
        wanted = {
            "channels": ["email", "sms"],
            "language": "en",
            "quiet_hours": "22:00-07:00",
            "email": "me@example.kr",
        }
        assert (await client.put("/api/notify/preferences", json=wanted, headers=auth)).json() == (
            wanted
        )
        assert (await client.get("/api/notify/preferences", headers=auth)).json() == wanted
        for bad in ({"quiet_hours": "25:00-07:00"}, {"channels": ["pigeon"]}, {"email": "x"}):
            answer = await client.put("/api/notify/preferences", json=bad, headers=auth)
            assert answer.status_code == 422, bad
        message = await send(app, Recipient(user_id=user.id))
        assert message.deliveries[0].channel == "email" and message.language == "en"
