"""The notification outbox: transactions, retries, idempotency, quiet hours, preferences."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import func, select

from civic.kernel.bus import OutboxEvent
from civic.kernel.db import transaction
from civic.kernel.identity import Role
from civic.kernel.notify import (
    DeliveryAttempt,
    DevInboxMessage,
    NotificationDelivery,
    NotificationMessage,
    Notifier,
    NotifyError,
    Preferences,
    Recipient,
    Urgency,
    quiet_until,
    set_preferences,
)
from civic.settings import Settings
from tests.factories import make_organisation, make_user, unique
from tests.kernel.notify_servers import Clock, capture_server, notifier, notify_app

KST = ZoneInfo("Asia/Seoul")


def a_phone() -> str:
    return "010" + unique("p").split("-")[1][:8].translate(str.maketrans("abcdef", "123456"))


async def deliveries_of(app: FastAPI, message_id: str) -> list[NotificationDelivery]:
    async with app.state.kernel.sessions() as session:
        rows = await session.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.message_id == message_id)
            .order_by(NotificationDelivery.position)
        )
        return list(rows)


async def inbox_for(app: FastAPI, address: str) -> list[DevInboxMessage]:
    async with app.state.kernel.sessions() as session:
        rows = await session.scalars(
            select(DevInboxMessage)
            .where(DevInboxMessage.address == address)
            .order_by(DevInboxMessage.id)
        )
        return list(rows)


async def sent_eventually(app: FastAPI, message_id: str, within: float = 10) -> None:
    """Wait until the worker, running on its own, marked the message sent."""
    async with asyncio.timeout(within):
        while True:
            if any(d.status == "sent" for d in await deliveries_of(app, message_id)):
                return
            await asyncio.sleep(0.02)


async def send(app: FastAPI, recipient: Recipient, **options) -> NotificationMessage:
    options.setdefault("template", "generic")
    options.setdefault("context", {"title": "알림", "text": "점검이 끝났습니다."})
    async with transaction(app.state.kernel.sessions) as session:
        return await notifier(app).notify(session, recipient=recipient, **options)


async def test_a_rolled_back_transaction_sends_nothing(settings: Settings) -> None:
    async with notify_app(settings, worker=True) as app:
        ghost, real = a_phone(), a_phone()
        with pytest.raises(RuntimeError):
            async with transaction(app.state.kernel.sessions) as session:
                await notifier(app).notify(
                    session,
                    recipient=Recipient(phone=ghost),
                    template="generic",
                    context={"title": "유령", "text": "보내면 안 됩니다"},
                )
                raise RuntimeError("the change that caused it failed")
        message = await send(app, Recipient(phone=real))
        await sent_eventually(app, message.id)
        assert [m.body for m in await inbox_for(app, real)] == ["[알림] 점검이 끝났습니다."]
        assert await inbox_for(app, ghost) == []
        async with app.state.kernel.sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(NotificationDelivery)
                .where(NotificationDelivery.address == ghost)
            )
        assert count == 0


async def test_the_worker_sends_after_commit_and_records_the_attempt(settings: Settings) -> None:
    async with notify_app(settings) as app:
        phone = a_phone()
        message = await send(app, Recipient(phone=phone, name="김민지"))
        [queued] = message.deliveries
        assert (queued.status, queued.channel, queued.transport) == ("queued", "sms", "dev_inbox")
        assert await notifier(app).deliver_due() >= 1
        [delivery] = await deliveries_of(app, message.id)
        assert delivery.status == "sent" and delivery.attempts == 1 and delivery.sent_at
        [received] = await inbox_for(app, phone)
        assert received.channel == "sms" and received.delivery_id == delivery.id
        async with app.state.kernel.sessions() as session:
            [attempt] = await session.scalars(
                select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
            )
            event = await session.scalar(
                select(OutboxEvent).where(
                    OutboxEvent.name == "notify.sent", OutboxEvent.key == message.id
                )
            )
        assert attempt.outcome == "sent" and attempt.number == 1
        assert event is not None and event.payload["delivery_id"] == delivery.id


async def test_transient_failures_back_off_then_give_up(settings: Settings) -> None:
    clock = Clock(datetime(2026, 11, 25, 3, 0, tzinfo=UTC))
    async with capture_server() as gateway:
        gateway.default_status = 503
        async with notify_app(
            settings,
            clock=clock,
            channels=["sms"],
            retry_attempts=3,
            retry_first_delay_seconds=30,
            retry_factor=4,
            sms={"gateway_url": gateway.url("/sms"), "api_key": "k"},
        ) as app:
            message = await send(app, Recipient(phone=a_phone()))
            waits = []
            for _ in range(3):
                assert await notifier(app).deliver_due() == 1
                assert await notifier(app).deliver_due() == 0  # not due yet
                [delivery] = await deliveries_of(app, message.id)
                waits.append((delivery.next_attempt_at - clock.now).total_seconds())
                clock.now = delivery.next_attempt_at
            assert delivery.status == "failed" and delivery.attempts == 3
            assert "503" in (delivery.last_error or "")
            assert waits[:2] == [30, 120]
            assert len(gateway.requests) == 3
            keys = {r.headers["idempotency-key"] for r in gateway.requests}
            assert keys == {delivery.id}
            async with app.state.kernel.sessions() as session:
                failed = await session.scalar(
                    select(OutboxEvent).where(
                        OutboxEvent.name == "notify.failed", OutboxEvent.key == message.id
                    )
                )
            assert failed is not None and "503" in failed.payload["error"]


async def test_an_emergency_retries_sooner(settings: Settings) -> None:
    async with notify_app(settings, emergency_first_delay_seconds=2) as app:
        assert notifier(app).backoff(1, "emergency") == 2
        assert notifier(app).backoff(1, "normal") == 30
        assert notifier(app).backoff(50, "normal") == 3600


async def test_an_idempotency_key_queues_and_sends_once(settings: Settings) -> None:
    async with notify_app(settings) as app:
        phone, key = a_phone(), unique("incident-42-status")
        first = await send(app, Recipient(phone=phone), idempotency_key=key)
        again = await send(app, Recipient(phone=phone), idempotency_key=key)
        assert again.id == first.id and len(again.deliveries) == 1
        await notifier(app).deliver_due()
        # As after a crash between sending and recording: the lease runs out, it is sent again.
        async with transaction(app.state.kernel.sessions) as session:
            row = await session.get(NotificationDelivery, first.deliveries[0].id)
            row.status, row.locked_until = "sending", datetime(2020, 1, 1, tzinfo=UTC)
        assert await notifier(app).deliver_due() == 1
        assert len(await inbox_for(app, phone)) == 1
        [delivery] = await deliveries_of(app, first.id)
        assert delivery.status == "sent"


async def test_quiet_hours_hold_normal_messages_but_never_an_emergency(
    settings: Settings,
) -> None:
    late = datetime(2026, 11, 25, 23, 30, tzinfo=KST)
    clock = Clock(late.astimezone(UTC))
    async with notify_app(settings, clock=clock, quiet_hours="22:00-07:00") as app:
        phone = a_phone()
        normal = await send(app, Recipient(phone=phone))
        urgent = await send(app, Recipient(phone=phone), urgency=Urgency.EMERGENCY)
        [held] = normal.deliveries
        morning = datetime(2026, 11, 26, 7, 0, tzinfo=KST)
        assert held.status == "held" and held.held_until == morning
        # An emergency goes out at once, on every channel that reaches the phone.
        assert [d.status for d in urgent.deliveries] == ["queued", "queued"]
        await notifier(app).deliver_due()
        got = {(m.message_id, m.channel) for m in await inbox_for(app, phone)}
        assert got == {(urgent.id, "sms"), (urgent.id, "messenger")}
        clock.now = morning.astimezone(UTC)
        assert await notifier(app).deliver_due() == 1
        got = [(m.message_id, m.channel) for m in await inbox_for(app, phone)]
        assert got[2:] == [(normal.id, "sms")]


async def test_a_retry_that_falls_into_quiet_hours_is_held(settings: Settings) -> None:
    clock = Clock(datetime(2026, 11, 25, 12, 0, tzinfo=KST).astimezone(UTC))
    async with notify_app(settings, clock=clock, quiet_hours="13:00-14:00") as app:
        message = await send(app, Recipient(phone=a_phone()))
        clock.now = datetime(2026, 11, 25, 13, 10, tzinfo=KST).astimezone(UTC)
        assert await notifier(app).deliver_due() == 0
        [delivery] = await deliveries_of(app, message.id)
        assert delivery.status == "held"
        assert delivery.next_attempt_at == datetime(2026, 11, 25, 14, 0, tzinfo=KST)


def test_quiet_windows_that_wrap_midnight_and_those_that_do_not() -> None:
    zone = KST

    def at(hour: int, minute: int = 0, day: int = 25) -> datetime:
        return datetime(2026, 11, day, hour, minute, tzinfo=zone)

    assert quiet_until(at(23), "22:00-07:00", zone) == at(7, day=26)
    assert quiet_until(at(3), "22:00-07:00", zone) == at(7)
    assert quiet_until(at(7), "22:00-07:00", zone) is None
    assert quiet_until(at(21, 59), "22:00-07:00", zone) is None
    assert quiet_until(at(12, 30), "12:00-13:00", zone) == at(13)
    assert quiet_until(at(13), "12:00-13:00", zone) is None
    assert quiet_until(at(23), None, zone) is None
    with pytest.raises(ValueError, match="HH:MM"):
        quiet_until(at(1), "10pm-7am", zone)


async def test_preferences_choose_channel_language_and_quiet_hours(settings: Settings) -> None:
    clock = Clock(datetime(2026, 11, 25, 23, 0, tzinfo=KST).astimezone(UTC))
    async with notify_app(settings, clock=clock, quiet_hours="22:00-07:00") as app:
        phone = a_phone()
        async with transaction(app.state.kernel.sessions) as session:
            await set_preferences(
                session,
                subject=f"phone:{phone[:3]}-{phone[3:7]}-{phone[7:]}",
                preferences=Preferences(
                    channels=["email", "messenger"], language="en", quiet_hours=""
                ),
            )
        message = await send(
            app,
            Recipient(phone=phone),
            template="citizen_link",
            context={"sender": "119", "subject": "Your call", "link": "http://testserver/s/1"},
        )
        # No e-mail address is known, so the messenger comes first; English; never quiet.
        [delivery] = message.deliveries
        assert (delivery.channel, delivery.status) == ("messenger", "queued")
        assert "See it here: http://testserver/s/1" in delivery.body
        assert delivery.meta["button"] == "Open"
        assert message.language == "en" and message.quiet_hours is None


async def test_a_user_is_reached_on_their_phone_and_chosen_email(settings: Settings) -> None:
    async with notify_app(settings) as app:
        organisation = await make_organisation(app)
        user = await make_user(
            app, organisation=organisation, roles={"x": [Role.CITIZEN]}, phone="010-5555-0101"
        )
        async with transaction(app.state.kernel.sessions) as session:
            await set_preferences(
                session,
                subject=f"user:{user.id}",
                preferences=Preferences(channels=["email", "sms"], email="minji@example.kr"),
            )
        message = await send(app, Recipient(user_id=user.id), urgency="emergency")
        assert [(d.channel, d.address) for d in message.deliveries] == [
            ("email", "minji@example.kr"),
            ("sms", "01055550101"),
        ]
        assert message.deliveries[0].html and "점검이 끝났습니다." in message.deliveries[0].html


async def test_a_failed_channel_falls_back_to_the_next(settings: Settings) -> None:
    async with capture_server() as gateway:
        gateway.default_status = 400
        async with notify_app(
            settings,
            channels=["sms", "messenger"],
            sms={"gateway_url": gateway.url("/sms")},
        ) as app:
            phone = a_phone()
            message = await send(app, Recipient(phone=phone))
            assert message.deliveries[0].fallbacks == [["messenger", phone]]
            await notifier(app).deliver_due()
            await notifier(app).deliver_due()
            sms, messenger = await deliveries_of(app, message.id)
            assert (sms.status, sms.attempts) == ("failed", 1)
            assert "400" in (sms.last_error or "")
            assert (messenger.channel, messenger.status, messenger.position) == (
                "messenger",
                "sent",
                1,
            )
            [received] = await inbox_for(app, phone)
            assert received.channel == "messenger"


async def test_nobody_reachable_is_recorded_as_failed(settings: Settings) -> None:
    async with notify_app(settings) as app:
        message = await send(app, Recipient(email="nobody@example.kr"), channels=["sms", "push"])
        [delivery] = message.deliveries
        assert (delivery.channel, delivery.status) == ("none", "failed")
        assert "no enabled channel" in (delivery.last_error or "")
        async with app.state.kernel.sessions() as session:
            event = await session.scalar(
                select(OutboxEvent).where(
                    OutboxEvent.name == "notify.failed", OutboxEvent.key == message.id
                )
            )
        assert event is not None and event.payload["channel"] == "none"
        with pytest.raises(NotifyError, match="unknown channels"):
            await send(app, Recipient(phone=a_phone()), channels=["pigeon"])
        with pytest.raises(NotifyError, match="JSON"):
            await send(app, Recipient(phone=a_phone()), context={"when": datetime.now(UTC)})


def test_a_recipient_needs_an_address() -> None:
    with pytest.raises(ValidationError, match="user_id, a phone or an e-mail"):
        Recipient(name="누군가")
    with pytest.raises(ValidationError, match="전화번호"):
        Recipient(phone="--")
    assert Recipient(phone="+82 10-1234-5678").phone == "+821012345678"


def test_production_refuses_the_dev_inbox_unless_allowed() -> None:
    secret = {"secret_key": "p" * 40}
    with pytest.raises(ValidationError, match="ALLOW_DEV_INBOX_IN_PRODUCTION"):
        Settings(env="production", security=secret, notify={"dev_inbox": True})
    allowed = Settings(
        env="production",
        security=secret,
        notify={"dev_inbox": True, "allow_dev_inbox_in_production": True},
    )
    assert allowed.notify.dev_inbox_on(allowed.env)
    default = Settings(env="production", security=secret)
    assert not default.notify.dev_inbox_on(default.env)
    assert Settings(env="development").notify.dev_inbox_on(Settings(env="development").env)
    with pytest.raises(ValidationError, match="quiet_hours"):
        Settings(notify={"quiet_hours": "22-7"})
    with pytest.raises(ValidationError, match="time zone 'Mars/Base'"):
        Settings(notify={"timezone": "Mars/Base"})


async def test_two_senders_never_send_one_delivery_twice(settings: Settings) -> None:
    async with notify_app(settings, channels=["sms"], batch=7) as app:
        other = Notifier(app.state.kernel.settings.notify, env=app.state.kernel.settings.env)
        await other.start(app.state.kernel)
        try:
            messages = [await send(app, Recipient(phone=a_phone())) for _ in range(20)]
            while sum(await asyncio.gather(notifier(app).deliver_due(), other.deliver_due())):
                pass
        finally:
            await other.stop()
        async with app.state.kernel.sessions() as session:
            ids = [m.deliveries[0].id for m in messages]
            attempts = list(
                await session.scalars(
                    select(DeliveryAttempt.delivery_id).where(DeliveryAttempt.delivery_id.in_(ids))
                )
            )
        assert sorted(attempts) == sorted(ids)
