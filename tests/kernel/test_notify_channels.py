"""Each real channel adapter against a real server on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime

from py_vapid import Vapid
from sqlalchemy import select

from civic.kernel.db import transaction
from civic.kernel.identity import Role
from civic.kernel.notify import NotificationDelivery, PushSubscription, Recipient, Urgency
from civic.kernel.notify.webpush import subscribe
from civic.settings import Settings
from tests.factories import make_organisation, make_user, unique
from tests.kernel.notify_servers import (
    Browser,
    Clock,
    capture_server,
    notifier,
    notify_app,
    smtp_server,
    verify_vapid,
)
from tests.kernel.test_notify import a_phone, deliveries_of, send

LONG_TEXT = (
    "오늘 오후 세 시부터 다섯 시까지 수도관 공사로 단수됩니다. 물을 미리 받아 두시기 바랍니다."
)


async def test_sms_gateway_gets_json_with_key_and_sms_or_lms(settings: Settings) -> None:
    async with capture_server() as gateway:
        async with notify_app(
            settings,
            channels=["sms"],
            sms={"gateway_url": gateway.url("/v1/send"), "api_key": "sms-key", "sender": "1588"},
        ) as app:
            phone = a_phone()
            short = await send(
                app, Recipient(phone=phone), context={"title": "알림", "text": "점검"}
            )
            long = await send(
                app, Recipient(phone=phone), context={"title": "단수 안내", "text": LONG_TEXT}
            )
            await notifier(app).deliver_due()
            bodies = {r.json()["message_id"]: r for r in gateway.requests}
            first = bodies[short.deliveries[0].id]
            assert first.path == "/v1/send" and first.method == "POST"
            assert first.headers["x-api-key"] == "sms-key"
            assert first.json() == {
                "message_id": short.deliveries[0].id,
                "type": "SMS",
                "from": "1588",
                "to": phone,
                "text": "[알림] 점검",
            }
            second = bodies[long.deliveries[0].id].json()
            assert second["type"] == "LMS" and second["subject"] == "단수 안내"
            assert long.deliveries[0].meta["bytes"] > 90
            [delivery] = await deliveries_of(app, short.id)
            assert delivery.status == "sent" and delivery.meta["provider_id"].startswith("gw-")


async def test_sms_gateway_5xx_is_retried_and_4xx_fails_at_once(settings: Settings) -> None:
    clock = Clock(datetime(2026, 11, 25, 3, 0, tzinfo=UTC))
    async with capture_server() as gateway:
        async with notify_app(
            settings, clock=clock, channels=["sms"], sms={"gateway_url": gateway.url("/sms")}
        ) as app:
            gateway.answers = [502, 200]
            retried = await send(app, Recipient(phone=a_phone()))
            await notifier(app).deliver_due()
            [delivery] = await deliveries_of(app, retried.id)
            assert (delivery.status, delivery.attempts) == ("queued", 1)
            clock.advance(seconds=30)
            await notifier(app).deliver_due()
            [delivery] = await deliveries_of(app, retried.id)
            assert (delivery.status, delivery.attempts) == ("sent", 2)

            gateway.answers = [422]
            refused = await send(app, Recipient(phone=a_phone()))
            await notifier(app).deliver_due()
            [delivery] = await deliveries_of(app, refused.id)
            assert (delivery.status, delivery.attempts) == ("failed", 1)
            assert "422" in (delivery.last_error or "")


async def test_sms_gateway_that_is_down_is_retried(settings: Settings) -> None:
    async with capture_server() as gateway:
        closed_url = gateway.url("/sms")
    async with notify_app(settings, channels=["sms"], sms={"gateway_url": closed_url}) as app:
        message = await send(app, Recipient(phone=a_phone()))
        await notifier(app).deliver_due()
        [delivery] = await deliveries_of(app, message.id)
        assert (delivery.status, delivery.attempts) == ("queued", 1)
        assert "unreachable" in (delivery.last_error or "")


async def test_messenger_webhook_gets_a_message_with_a_link_button(settings: Settings) -> None:
    async with capture_server() as webhook:
        webhook.answers = [500]
        clock = Clock(datetime(2026, 11, 25, 3, 0, tzinfo=UTC))
        async with notify_app(
            settings,
            clock=clock,
            channels=["messenger"],
            messenger={"webhook_url": webhook.url("/hook"), "sender_key": "civic-channel"},
        ) as app:
            phone = a_phone()
            message = await send(
                app,
                Recipient(phone=phone),
                template="citizen_link",
                context={"sender": "양천구청", "subject": "민원 처리", "link": "https://x.kr/s/9"},
                urgency=Urgency.EMERGENCY,
            )
            await notifier(app).deliver_due()
            clock.advance(seconds=5)  # emergencies retry after emergency_first_delay_seconds
            await notifier(app).deliver_due()
            assert len(webhook.requests) == 2
            body = webhook.requests[-1].json()
            assert body["senderKey"] == "civic-channel"
            assert body["templateCode"] == "citizen_link"
            assert body["recipientNo"] == phone and body["urgent"] is True
            assert "https://x.kr/s/9" in body["content"]
            assert body["buttons"] == [
                {
                    "type": "WL",
                    "name": "확인하기",
                    "linkMo": "https://x.kr/s/9",
                    "linkPc": "https://x.kr/s/9",
                }
            ]
            [delivery] = await deliveries_of(app, message.id)
            assert (delivery.status, delivery.attempts) == ("sent", 2)


async def test_smtp_server_receives_text_and_html(settings: Settings) -> None:
    async with smtp_server() as (sink, port):
        sink.refuse.add("gone@example.kr")
        async with notify_app(
            settings,
            channels=["email"],
            email={
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "tls": "none",
                "username": "civic",
                "password": "smtp-secret",
                "sender": "양천구청 <notify@yangcheon.example.kr>",
            },
        ) as app:
            message = await send(
                app,
                Recipient(email="minji@example.kr"),
                context={"title": "점검 안내", "text": "자세히: https://x.kr/a?b=1&c=2"},
            )
            refused = await send(app, Recipient(email="gone@example.kr"))
            await notifier(app).deliver_due()
            [mail] = sink.messages
            assert set(sink.logins) == {"civic"}
            assert sink.envelopes == [("notify@yangcheon.example.kr", ["minji@example.kr"])]
            assert mail["Subject"] == "점검 안내" and mail["To"] == "minji@example.kr"
            text = mail.get_body(preferencelist=("plain",)).get_content()
            html = mail.get_body(preferencelist=("html",)).get_content()
            assert "자세히: https://x.kr/a?b=1&c=2" in text
            assert '<a href="https://x.kr/a?b=1&amp;c=2">' in html
            assert mail["X-Civic-Idempotency-Key"] == message.deliveries[0].id
            [sent] = await deliveries_of(app, message.id)
            [failed] = await deliveries_of(app, refused.id)
            assert sent.status == "sent"
            assert (failed.status, failed.attempts) == ("failed", 1)
            assert "550" in (failed.last_error or "")


async def test_web_push_posts_an_encrypted_vapid_signed_message(settings: Settings) -> None:
    vapid = Vapid()
    vapid.generate_keys()
    private_pem = vapid.private_pem().decode()
    browser, gone_browser = Browser(), Browser()
    async with capture_server() as push_service:
        push_service.default_status = 201
        async with notify_app(
            settings,
            channels=["push", "sms"],
            push={
                "vapid_private_key": private_pem,
                "vapid_subject": "mailto:ops@civic.example.kr",
                "ttl_seconds": 600,
            },
        ) as app:
            organisation = await make_organisation(app)
            user = await make_user(app, organisation=organisation, roles={"x": [Role.CITIZEN]})
            async with transaction(app.state.kernel.sessions) as session:
                for who, path in ((browser, "/push/alive"), (gone_browser, "/push/gone")):
                    await subscribe(
                        session,
                        user_id=user.id,
                        endpoint=push_service.url(path + unique("-")),
                        **who.keys(),
                    )
            push_service.by_path = {"/push/gone": 410}  # that browser unsubscribed long ago
            message = await send(
                app,
                Recipient(user_id=user.id),
                context={
                    "title": "출동 요청",
                    "text": "가까운 곳에서 심정지 환자",
                    "link": "https://x.kr/r/1",
                },
                urgency=Urgency.EMERGENCY,
            )
            assert [d.channel for d in message.deliveries] == ["push", "sms"]
            await notifier(app).deliver_due()
            assert len(push_service.requests) == 2
            alive = next(r for r in push_service.requests if r.path.startswith("/push/alive"))
            key = verify_vapid(
                alive.headers["authorization"],
                audience=f"http://127.0.0.1:{push_service.port}",
                subject="mailto:ops@civic.example.kr",
            )
            assert key == notifier(app).push_public_key
            assert alive.headers["content-encoding"] == "aes128gcm"
            assert alive.headers["ttl"] == "600" and alive.headers["urgency"] == "high"
            payload = browser.decrypt(alive.body)
            assert payload["title"] == "출동 요청" and payload["url"] == "https://x.kr/r/1"
            assert payload["body"].startswith("가까운 곳에서 심정지 환자")
            push = (await deliveries_of(app, message.id))[0]
            assert push.status == "sent"
            async with app.state.kernel.sessions() as session:
                endpoints = list(
                    await session.scalars(
                        select(PushSubscription.endpoint).where(PushSubscription.user_id == user.id)
                    )
                )
            assert len(endpoints) == 1 and "/push/alive" in endpoints[0]


async def test_web_push_to_a_user_with_no_live_browser_falls_back_to_sms(
    settings: Settings,
) -> None:
    vapid = Vapid()
    vapid.generate_keys()
    async with capture_server() as push_service:
        push_service.default_status = 404
        async with notify_app(
            settings,
            channels=["push", "sms"],
            push={"vapid_private_key": vapid.private_pem().decode()},
        ) as app:
            organisation = await make_organisation(app)
            user = await make_user(
                app, organisation=organisation, roles={"x": [Role.CITIZEN]}, phone=a_phone()
            )
            async with transaction(app.state.kernel.sessions) as session:
                await subscribe(
                    session, user_id=user.id, endpoint=push_service.url("/p/1"), **Browser().keys()
                )
            message = await send(app, Recipient(user_id=user.id))
            await notifier(app).deliver_due()
            await notifier(app).deliver_due()
            push, sms = await deliveries_of(app, message.id)
            assert (push.status, push.last_error) == ("failed", "push service refused: [404]")
            assert (sms.channel, sms.transport, sms.status) == ("sms", "dev_inbox", "sent")
            async with app.state.kernel.sessions() as session:
                left = await session.scalar(
                    select(PushSubscription.id).where(PushSubscription.user_id == user.id)
                )
            assert left is None
            # With the subscription gone, the next message goes straight to SMS.
            later = await send(app, Recipient(user_id=user.id))
            assert [d.channel for d in later.deliveries] == ["sms"]
            async with app.state.kernel.sessions() as session:
                rows = await session.scalars(
                    select(NotificationDelivery).where(NotificationDelivery.message_id == later.id)
                )
                assert [r.status for r in rows] == ["queued"]
