"""Tables of notifications: messages, their deliveries per channel, tries, the dev inbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from civic.kernel.db import Base, IdMixin, TimestampMixin, UtcDateTime, utcnow

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class Urgency(StrEnum):
    """How urgent a message is; emergencies are never held by quiet hours."""

    NORMAL = "normal"
    EMERGENCY = "emergency"


class DeliveryStatus(StrEnum):
    """Where one delivery stands."""

    QUEUED = "queued"
    HELD = "held"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class NotificationMessage(IdMixin, TimestampMixin, Base):
    """One call of `notify`: whom, which template with what context, how urgent."""

    __tablename__ = "notify_messages"

    organisation_id: Mapped[str | None] = mapped_column(String(32), index=True)
    template: Mapped[str] = mapped_column(String(120))
    urgency: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[dict[str, Any]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(10))
    quiet_hours: Mapped[str | None] = mapped_column(String(11))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)

    deliveries: Mapped[list[NotificationDelivery]] = relationship(
        back_populates="message",
        cascade="all, delete-orphan",
        passive_deletes=True,
        # Deliveries are loaded on purpose (selectinload), never by surprise from a claim.
        lazy="raise_on_sql",
        order_by="NotificationDelivery.position",
    )


class NotificationDelivery(IdMixin, TimestampMixin, Base):
    """A message rendered for one channel and address, sent with retries."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (Index("ix_notify_deliveries_due", "status", "next_attempt_at"),)

    message_id: Mapped[str] = mapped_column(
        ForeignKey("notify_messages.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(20))
    transport: Mapped[str] = mapped_column(String(20), index=True)
    address: Mapped[str] = mapped_column(String(320))
    position: Mapped[int] = mapped_column(Integer, default=0)
    fallbacks: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    held_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    message: Mapped[NotificationMessage] = relationship(
        back_populates="deliveries", lazy="joined", innerjoin=True
    )


class DeliveryAttempt(Base):
    """One try to send a delivery, and how it went."""

    __tablename__ = "notify_attempts"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("notify_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(10))
    status_code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class DevInboxMessage(Base):
    """A message the development inbox received instead of a real gateway."""

    __tablename__ = "notify_dev_inbox"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    # Unique: a send repeated after a crash does not show the message twice.
    delivery_id: Mapped[str] = mapped_column(String(32), unique=True)
    message_id: Mapped[str] = mapped_column(String(32), index=True)
    organisation_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320), index=True)
    template: Mapped[str] = mapped_column(String(120))
    urgency: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class NotifyPreference(IdMixin, TimestampMixin, Base):
    """How one person wants to be reached: channels in order, language, quiet hours."""

    __tablename__ = "notify_preferences"

    # "user:<id>", "phone:<digits>" or "email:<address>": citizens without accounts too.
    subject: Mapped[str] = mapped_column(String(340), unique=True)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(10))
    # None: the platform's default; "": never quiet; "22:00-07:00": quiet then.
    quiet_hours: Mapped[str | None] = mapped_column(String(11))
    email: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class PushSubscription(IdMixin, TimestampMixin, Base):
    """A browser's Web Push subscription of one user."""

    __tablename__ = "notify_push_subscriptions"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(Text)
    # Endpoints are long URLs; their digest keeps the unique index small on every database.
    endpoint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
