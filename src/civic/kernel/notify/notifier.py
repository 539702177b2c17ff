"""The Notifier kernel part: the outbox plus the worker that sends what was committed.

The worker claims due deliveries (queued, held past their quiet hours, or stuck in `sending`
past their lease because a process died), sends each through its channel, and records every try.
A channel that says "try again" is retried with exponential backoff until `retry_attempts`; one
that refuses the message, or the last try, marks the delivery failed and hands the message to the
next channel the recipient can be reached on. Each delivery carries its id as idempotency key to
the gateways, so a send repeated after a crash can be recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.bus import publish, wake_soon
from civic.kernel.db import transaction
from civic.kernel.notify.channels import (
    Channel,
    ChannelFailure,
    DevInboxChannel,
    GiveUp,
    HttpSmsChannel,
    Outgoing,
    Sent,
    TryAgain,
    WebhookMessengerChannel,
)
from civic.kernel.notify.email import SmtpChannel
from civic.kernel.notify.events import NotificationFailed, NotificationSent
from civic.kernel.notify.models import (
    DeliveryAttempt,
    DeliveryStatus,
    NotificationDelivery,
    Urgency,
)
from civic.kernel.notify.outbox import Clock, Outbox, register_sender_waker
from civic.kernel.notify.preferences import quiet_until
from civic.kernel.notify.templates import NotifyTemplateError
from civic.kernel.notify.webpush import WebPushChannel, application_server_key, load_vapid
from civic.kernel.runtime import Kernel
from civic.kernel.settings import Environment, NotifySettings

log = structlog.get_logger("civic.notify")
_DUE = (DeliveryStatus.QUEUED.value, DeliveryStatus.HELD.value)


def _nothing() -> None:
    pass


def notifier_of(kernel: Kernel) -> Notifier:
    """Return the notifier of a running kernel."""
    return kernel.part("notify", Notifier)


@dataclass(frozen=True)
class _Claim:
    delivery_id: str
    transport: str
    outgoing: Outgoing


class Notifier(Outbox):
    """Kernel part: queue notifications with `notify`, and send them in the background."""

    name = "notify"

    def __init__(
        self,
        settings: NotifySettings,
        *,
        env: Environment = Environment.DEVELOPMENT,
        base_url: str = "",
        clock: Clock | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        """Build from settings; channels given here replace the built ones of their transport."""
        super().__init__(settings, env=env, base_url=base_url, clock=clock)
        self._given = dict(channels or {})
        self.channels: dict[str, Channel] = {}
        key = settings.push.vapid_private_key
        self.push_public_key = (
            application_server_key(load_vapid(key.get_secret_value())) if key else None
        )
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._postgres = False
        self._task: asyncio.Task[None] | None = None
        self._flag = asyncio.Event()
        self._unregister: Callable[[], None] = _nothing

    async def start(self, kernel: Kernel) -> None:
        """Open the channels and, when settings say so, start sending."""
        self._sessions = kernel.sessions
        self._postgres = kernel.engine.dialect.name == "postgresql"
        self.channels = self._build_channels(kernel.sessions) | self._given
        if self.settings.worker:
            self._flag = asyncio.Event()
            self._unregister = register_sender_waker(
                wake_soon(asyncio.get_running_loop(), self._flag)
            )
            self._task = asyncio.create_task(self._run(), name="civic-notify-worker")

    async def stop(self) -> None:
        """Stop sending; what is queued stays in the outbox for the next start."""
        self._unregister()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:
                log.exception("channel_close_failed", transport=channel.transport)

    def _build_channels(self, sessions: async_sessionmaker[AsyncSession]) -> dict[str, Channel]:
        s = self.settings
        timeout = s.http_timeout_seconds
        needed = set(self.routes.values())
        built: dict[str, Channel] = {}
        if "dev_inbox" in needed:
            built["dev_inbox"] = DevInboxChannel(sessions)
        if "http_sms" in needed and s.sms.gateway_url:
            built["http_sms"] = HttpSmsChannel(
                s.sms.gateway_url,
                api_key=s.sms.api_key.get_secret_value() if s.sms.api_key else None,
                sender=s.sms.sender,
                timeout=timeout,
            )
        if "messenger_webhook" in needed and s.messenger.webhook_url:
            built["messenger_webhook"] = WebhookMessengerChannel(
                s.messenger.webhook_url,
                api_key=s.messenger.api_key.get_secret_value() if s.messenger.api_key else None,
                sender_key=s.messenger.sender_key,
                timeout=timeout,
            )
        if "smtp" in needed and s.email.smtp_host:
            built["smtp"] = SmtpChannel(
                host=s.email.smtp_host,
                port=s.email.smtp_port,
                sender=s.email.sender,
                username=s.email.username,
                password=s.email.password.get_secret_value() if s.email.password else None,
                tls=s.email.tls,
                timeout=timeout,
            )
        if "web_push" in needed and s.push.vapid_private_key:
            built["web_push"] = WebPushChannel(
                sessions,
                private_key=s.push.vapid_private_key.get_secret_value(),
                subject=s.push.vapid_subject,
                ttl=s.push.ttl_seconds,
                timeout=timeout,
            )
        return built

    def backoff(self, attempt: int, urgency: str) -> float:
        """Seconds to wait after failed try number attempt (1-based)."""
        s = self.settings
        first = (
            s.emergency_first_delay_seconds
            if urgency == Urgency.EMERGENCY.value
            else s.retry_first_delay_seconds
        )
        return float(min(first * s.retry_factor ** (attempt - 1), s.retry_max_delay_seconds))

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("notify_worker_failed")
                sent = 0
            if sent < self.settings.batch:
                self._flag.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flag.wait(), timeout=self.settings.poll_seconds)

    async def deliver_due(self, *, message_id: str | None = None) -> int:
        """Claim the deliveries due now (of one message), send, record; return how many."""
        claims = await self._claim(message_id)
        if not claims:
            return 0
        limit = asyncio.Semaphore(self.settings.concurrency)
        outcomes = await asyncio.gather(*(self._deliver(claim, limit) for claim in claims))
        try:
            await self._record(list(zip(claims, outcomes, strict=True)))
        except Exception:
            # The leases run out and these are tried again; their keys mark the repeat.
            log.exception("notify_record_failed", deliveries=len(claims))
        return len(claims)

    async def _claim(self, message_id: str | None) -> list[_Claim]:
        assert self._sessions is not None, "notifier not started"  # noqa: S101
        now = self.clock()
        row_ = NotificationDelivery
        due = or_(
            and_(row_.status.in_(_DUE), row_.next_attempt_at <= now),
            and_(row_.status == DeliveryStatus.SENDING.value, row_.locked_until <= now),
        )
        stmt = select(row_).where(due).order_by(row_.next_attempt_at, row_.id)
        stmt = stmt.limit(self.settings.batch)
        if message_id is not None:
            stmt = stmt.where(row_.message_id == message_id)
        if self._postgres:
            # Several processes may send: each row goes to the one that locked it first.
            stmt = stmt.with_for_update(skip_locked=True, of=row_)
        candidates: dict[str, NotificationDelivery] = {}
        async with transaction(self._sessions) as session:
            for row in (await session.scalars(stmt)).unique():
                message = row.message
                release = (
                    None
                    if message.urgency == Urgency.EMERGENCY.value
                    else quiet_until(now, message.quiet_hours, self.zone)
                )
                if release is None:
                    candidates[row.id] = row
                    continue
                await session.execute(
                    update(row_)
                    .where(row_.id == row.id, due)
                    .values(
                        status=DeliveryStatus.HELD.value,
                        next_attempt_at=release,
                        held_until=release,
                    ),
                    execution_options={"synchronize_session": False},
                )
            if not candidates:
                return []
            # Guarded by `due` again: of two senders that read the same row, one wins it.
            won = await session.scalars(
                update(row_)
                .where(row_.id.in_(list(candidates)), due)
                .values(
                    status=DeliveryStatus.SENDING.value,
                    locked_until=now + timedelta(seconds=self.settings.lease_seconds),
                )
                .returning(row_.id),
                execution_options={"synchronize_session": False},
            )
            claimed = set(won.all())
        return [
            _Claim(row.id, self.routes.get(row.channel, "none"), self._outgoing(row))
            for row_id, row in candidates.items()
            if row_id in claimed
        ]

    def _outgoing(self, row: NotificationDelivery) -> Outgoing:
        message = row.message
        return Outgoing(
            delivery_id=row.id,
            message_id=message.id,
            idempotency_key=row.id,
            channel=row.channel,
            address=row.address,
            template=message.template,
            urgency=message.urgency,
            title=row.title,
            body=row.body,
            html=row.html,
            link=row.link,
            meta=dict(row.meta),
            organisation_id=message.organisation_id,
        )

    async def _deliver(self, claim: _Claim, limit: asyncio.Semaphore) -> Sent | ChannelFailure:
        async with limit:
            channel = self.channels.get(claim.transport)
            if channel is None:
                return GiveUp(f"no '{claim.outgoing.channel}' channel runs in this process")
            try:
                return await channel.send(claim.outgoing)
            except ChannelFailure as failure:
                return failure
            except Exception as exc:
                log.exception("channel_crashed", transport=claim.transport)
                return TryAgain(f"{claim.transport} failed unexpectedly: {exc!r}")

    async def _record(self, results: list[tuple[_Claim, Sent | ChannelFailure]]) -> None:
        """Record the outcomes of one batch in one transaction."""
        assert self._sessions is not None  # noqa: S101
        now = self.clock()
        async with transaction(self._sessions) as session:
            rows = {
                row.id: row
                for row in (
                    await session.scalars(
                        select(NotificationDelivery).where(
                            NotificationDelivery.id.in_([claim.delivery_id for claim, _ in results])
                        )
                    )
                ).unique()
            }
            for claim, outcome in results:
                row = rows.get(claim.delivery_id)
                # A row another process took over after our lease ran out is its to record.
                if row is not None and row.status == DeliveryStatus.SENDING.value:
                    await self._record_one(session, row, outcome, now)

    async def _record_one(
        self,
        session: AsyncSession,
        row: NotificationDelivery,
        outcome: Sent | ChannelFailure,
        now: datetime,
    ) -> None:
        row.attempts += 1
        row.locked_until = None
        row.transport = self.routes.get(row.channel, "none")
        if isinstance(outcome, Sent):
            result = "sent"
            row.status = DeliveryStatus.SENT.value
            row.sent_at = now
            row.last_error = None
            if outcome.provider_id:
                row.meta = {**row.meta, "provider_id": outcome.provider_id}
            await publish(session, self._sent_event(row))
        elif isinstance(outcome, TryAgain) and row.attempts < self.settings.retry_attempts:
            result = "retry"
            row.status = DeliveryStatus.QUEUED.value
            delay = self.backoff(row.attempts, row.message.urgency)
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.last_error = outcome.detail[:4000]
            log.warning("notify_retry", delivery_id=row.id, error=outcome.detail[:300])
        else:
            result = "failed"
            row.status = DeliveryStatus.FAILED.value
            row.last_error = outcome.detail[:4000]
            log.error("notify_failed", delivery_id=row.id, error=outcome.detail[:300])
            await self._fall_back(session, row, now)
        session.add(
            DeliveryAttempt(
                delivery_id=row.id,
                number=row.attempts,
                at=now,
                outcome=result,
                status_code=outcome.status_code,
                detail=outcome.detail[:4000],
            )
        )

    def _sent_event(self, row: NotificationDelivery) -> NotificationSent:
        return NotificationSent(
            organisation_id=row.message.organisation_id,
            message_id=row.message_id,
            delivery_id=row.id,
            template=row.message.template,
            channel=row.channel,
            transport=row.transport,
        )

    async def _fall_back(
        self, session: AsyncSession, failed: NotificationDelivery, now: datetime
    ) -> None:
        """Queue the message on the next channel, or announce that nobody was reached."""
        message = failed.message
        remaining = list(failed.fallbacks)
        while remaining:
            channel, address = remaining.pop(0)
            if channel not in self.routes:
                continue
            try:
                text = self.render(message, channel)
            except NotifyTemplateError as exc:
                log.error("fallback_render_failed", channel=channel, error=str(exc))
                continue
            nxt = self.delivery(channel, address, text, position=failed.position + 1, due=now)
            nxt.message_id = message.id
            nxt.fallbacks = [list(pair) for pair in remaining]
            session.add(nxt)
            await session.flush()
            self._flag.set()
            return
        await publish(
            session,
            NotificationFailed(
                organisation_id=message.organisation_id,
                message_id=message.id,
                delivery_id=failed.id,
                template=message.template,
                channel=failed.channel,
                error=(failed.last_error or "")[:500],
            ),
        )
