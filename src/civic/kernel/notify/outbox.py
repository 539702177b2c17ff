"""The notification outbox: notifications are written in the caller's transaction.

`notify` decides whom to reach on which channels (the caller's list, else the recipient's
preferences, else the platform's order), renders the message for each, and adds the rows to the
caller's session: nothing exists, and nothing is sent, unless that transaction commits. A normal
message goes to the first channel that reaches the recipient and falls back to the next when it
fails; an emergency goes to every channel that reaches the recipient at once and is never held
by quiet hours. The Notifier's delivery worker sends what was committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from civic.kernel.bus import publish
from civic.kernel.db import utcnow
from civic.kernel.identity import User
from civic.kernel.notify.events import NotificationFailed
from civic.kernel.notify.models import (
    DeliveryStatus,
    NotificationDelivery,
    NotificationMessage,
    PushSubscription,
    Urgency,
)
from civic.kernel.notify.preferences import (
    CHANNELS,
    Preferences,
    Recipient,
    normalise_phone,
    preferences_for,
    quiet_until,
)
from civic.kernel.notify.templates import Rendered, TemplateCatalog
from civic.kernel.settings import Environment, NotifySettings

log = structlog.get_logger("civic.notify")
Clock = Callable[[], datetime]
_PENDING = "civic.notify.pending"
_wakers: set[Callable[[], None]] = set()


@event.listens_for(Session, "after_commit")
def _wake_senders_after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        for wake in list(_wakers):
            wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def register_sender_waker(wake: Callable[[], None]) -> Callable[[], None]:
    """Call wake after every commit that queued notifications; returns the unregister function."""
    _wakers.add(wake)
    return lambda: _wakers.discard(wake)


class NotifyError(ValueError):
    """A notification that cannot be queued as asked; the message says why."""


class Outbox:
    """Queues notifications: chooses channels and addresses, renders, writes the rows."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        env: Environment = Environment.DEVELOPMENT,
        base_url: str = "",
        clock: Clock | None = None,
    ) -> None:
        """Queue by settings; clock (UTC, aware) is injectable for quiet hours and retries."""
        self.settings = settings
        self.env = env
        self.base_url = base_url.rstrip("/")
        self.clock: Clock = clock or utcnow
        self.zone = ZoneInfo(settings.timezone)
        self.templates = TemplateCatalog()
        self.dev_inbox_on = settings.dev_inbox_on(env)
        self.routes = self._routes()

    def _routes(self) -> dict[str, str]:
        """Map each usable channel to the transport that carries it."""
        s = self.settings
        real = {
            "sms": "http_sms" if s.sms.gateway_url else None,
            "messenger": "messenger_webhook" if s.messenger.webhook_url else None,
            "email": "smtp" if s.email.smtp_host else None,
            "push": "web_push" if s.push.vapid_private_key else None,
            "dev_inbox": "dev_inbox" if self.dev_inbox_on else None,
        }
        routes: dict[str, str] = {}
        for channel in [*s.channels, "dev_inbox"]:
            transport = real[channel] or ("dev_inbox" if self.dev_inbox_on else None)
            if transport is not None:
                routes[channel] = transport
            elif channel != "dev_inbox":
                log.warning("channel_without_endpoint", channel=channel)
        return routes

    async def notify(
        self,
        session: AsyncSession,
        *,
        recipient: Recipient,
        template: str,
        context: Mapping[str, Any] | None = None,
        urgency: Urgency | str = Urgency.NORMAL,
        channels: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        organisation_id: str | None = None,
    ) -> NotificationMessage:
        """Queue a message for recipient in the caller's transaction; a known key queues nothing."""
        urgency = Urgency(urgency)
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise NotifyError("idempotency_key must be 1 to 200 characters")
            existing = await session.scalar(
                select(NotificationMessage)
                .where(NotificationMessage.idempotency_key == idempotency_key)
                .options(selectinload(NotificationMessage.deliveries))
            )
            if existing is not None:
                return existing
        unknown = [c for c in channels or () if c not in CHANNELS]
        if unknown:
            raise NotifyError(f"unknown channels {unknown}; known: {', '.join(CHANNELS)}")
        values = dict(context or {})
        try:
            json.dumps(values)
        except (TypeError, ValueError) as exc:
            raise NotifyError(f"notification context must be JSON: {exc}") from exc
        prefs = await preferences_for(session, recipient)
        language = recipient.language or (prefs.language if prefs else None) or "ko"
        quiet = prefs.quiet_hours if prefs and prefs.quiet_hours is not None else None
        if quiet is None:
            quiet = self.settings.quiet_hours
        order = list(channels or (prefs.channels if prefs and prefs.channels else ()))
        plan = await self._plan(session, recipient, prefs, order or list(self.settings.channels))
        message = NotificationMessage(
            organisation_id=organisation_id,
            template=template,
            urgency=urgency.value,
            recipient=recipient.model_dump(exclude_none=True),
            context=values,
            language=language,
            quiet_hours=quiet or None,
            idempotency_key=idempotency_key,
        )
        now = self.clock()
        held = None if urgency is Urgency.EMERGENCY else quiet_until(now, quiet, self.zone)
        rendered = [(c, a, self.render(message, c)) for c, a in plan]
        if not rendered:
            message.deliveries.append(self._unreachable(recipient, order, now))
        elif urgency is Urgency.EMERGENCY:
            for position, (channel, address, text) in enumerate(rendered):
                message.deliveries.append(
                    self.delivery(channel, address, text, position=position, due=now)
                )
        else:
            channel, address, text = rendered[0]
            first = self.delivery(channel, address, text, position=0, due=held or now)
            first.fallbacks = [[c, a] for c, a, _ in rendered[1:]]
            message.deliveries.append(first)
        session.add(message)
        await session.flush()
        if not rendered:
            [failed] = message.deliveries
            await publish(
                session,
                NotificationFailed(
                    organisation_id=organisation_id,
                    message_id=message.id,
                    delivery_id=failed.id,
                    template=template,
                    channel=failed.channel,
                    error=failed.last_error or "",
                ),
            )
        session.sync_session.info[_PENDING] = True
        return message

    def render(self, message: NotificationMessage, channel: str) -> Rendered:
        """Render a message for one channel, with the platform's own variables added."""
        recipient = message.recipient
        values = {
            "base_url": self.base_url,
            "recipient_name": recipient.get("name") or "",
            "urgency": message.urgency,
            **message.context,
        }
        return self.templates.render(
            message.template, channel=channel, language=message.language, context=values
        )

    def delivery(
        self, channel: str, address: str, text: Rendered, *, position: int, due: datetime
    ) -> NotificationDelivery:
        """Return a queued (or, when due later than now, held) delivery row."""
        held = due > self.clock()
        return NotificationDelivery(
            channel=channel,
            transport=self.routes.get(channel, "none"),
            address=address,
            position=position,
            fallbacks=[],
            status=DeliveryStatus.HELD.value if held else DeliveryStatus.QUEUED.value,
            title=text.title,
            body=text.body,
            html=text.html,
            link=text.link,
            meta=dict(text.meta),
            attempts=0,
            next_attempt_at=due,
            held_until=due if held else None,
        )

    def _unreachable(
        self, recipient: Recipient, order: list[str], now: datetime
    ) -> NotificationDelivery:
        tried = ", ".join(order or self.settings.channels)
        log.error("notification_unreachable", channels=tried)
        return NotificationDelivery(
            channel="none",
            transport="none",
            address=recipient.phone or recipient.email or recipient.user_id or "",
            position=0,
            fallbacks=[],
            status=DeliveryStatus.FAILED.value,
            body="",
            meta={},
            attempts=0,
            next_attempt_at=now,
            last_error=f"no enabled channel reaches this recipient (asked: {tried})",
        )

    async def _plan(
        self,
        session: AsyncSession,
        recipient: Recipient,
        prefs: Preferences | None,
        order: list[str],
    ) -> list[tuple[str, str]]:
        """Return (channel, address) for each usable channel in order that reaches recipient."""
        phone = recipient.phone
        if phone is None and recipient.user_id:
            user = await session.get(User, recipient.user_id)
            phone = normalise_phone(user.phone) if user is not None and user.phone else None
        email = recipient.email or (prefs.email if prefs else None)
        addresses = {"sms": phone, "messenger": phone, "email": email}
        addresses["dev_inbox"] = phone or email or recipient.user_id
        if recipient.user_id and "push" in order and "push" in self.routes:
            subscribed = await session.scalar(
                select(PushSubscription.id)
                .where(PushSubscription.user_id == recipient.user_id)
                .limit(1)
            )
            addresses["push"] = recipient.user_id if subscribed else None
        plan = []
        for channel in dict.fromkeys(order):
            address = addresses.get(channel)
            if channel in self.routes and address:
                plan.append((channel, address))
        return plan
