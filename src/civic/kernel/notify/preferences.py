"""Recipients and their preferences: channels in order, language and quiet hours."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.notify.models import NotifyPreference

QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
CHANNELS = ("push", "sms", "messenger", "email", "dev_inbox")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def normalise_phone(phone: str) -> str:
    """Keep the digits of a phone number (and a leading +): '010-1234-5678' → '01012345678'."""
    digits = re.sub(r"\D", "", phone)
    return ("+" + digits) if phone.strip().startswith("+") else digits


class Recipient(BaseModel):
    """Whom to notify: an account, or a citizen known only by phone or e-mail."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str | None = Field(default=None, max_length=32, description="Account id.")
    phone: str | None = Field(default=None, max_length=40, description="Mobile phone number.")
    email: str | None = Field(default=None, max_length=320, description="E-mail address.")
    name: str | None = Field(default=None, max_length=200, description="Name to greet.")
    language: str | None = Field(
        default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", description="Language (ko, en)."
    )

    @field_validator("phone")
    @classmethod
    def _digits(cls, phone: str | None) -> str | None:
        if phone is None:
            return None
        digits = normalise_phone(phone)
        if not 3 <= len(digits.lstrip("+")) <= 20:
            raise ValueError(f"전화번호가 올바르지 않습니다: {phone!r}")
        return digits

    @field_validator("email")
    @classmethod
    def _email(cls, email: str | None) -> str | None:
        if email is not None and not EMAIL.match(email):
            raise ValueError(f"전자우편 주소가 올바르지 않습니다: {email!r}")
        return email

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not (self.user_id or self.phone or self.email):
            raise ValueError("recipient needs a user_id, a phone or an e-mail address")
        return self

    def subjects(self) -> list[str]:
        """Preference keys of this recipient, the most specific first."""
        keys = []
        if self.user_id:
            keys.append(f"user:{self.user_id}")
        if self.phone:
            keys.append(f"phone:{self.phone}")
        if self.email:
            keys.append(f"email:{self.email.lower()}")
        return keys


def parse_quiet_hours(window: str) -> tuple[time, time]:
    """Return start and end of 'HH:MM-HH:MM' (equal ones make an empty window)."""
    match = QUIET_HOURS.match(window)
    if not match:
        raise ValueError(f"조용한 시간은 'HH:MM-HH:MM' 형식입니다 (quiet hours): {window!r}")
    start = time(int(match.group(1)), int(match.group(2)))
    end = time(int(match.group(3)), int(match.group(4)))
    return start, end


def quiet_until(now: datetime, window: str | None, zone: ZoneInfo) -> datetime | None:
    """Return when the quiet period that holds now ends, or None when now is not quiet."""
    if not window:
        return None
    start, end = parse_quiet_hours(window)
    if start == end:
        return None
    local = now.astimezone(zone)
    moment = local.time()
    today_end = datetime.combine(local.date(), end, tzinfo=zone)
    if start < end:
        inside = start <= moment < end
        release = today_end
    elif moment >= start:  # the window wraps midnight and we are before it
        inside, release = True, today_end + timedelta(days=1)
    else:
        inside, release = moment < end, today_end
    return release.astimezone(now.tzinfo) if inside else None


ChannelName = Literal["push", "sms", "messenger", "email", "dev_inbox"]


class Preferences(BaseModel):
    """What one person chose; None means the platform's default."""

    model_config = ConfigDict(extra="forbid")

    channels: list[ChannelName] = Field(
        default_factory=list, max_length=len(CHANNELS), description="Channels in order."
    )
    language: str | None = Field(
        default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", description="Language code (ko)."
    )
    quiet_hours: str | None = Field(
        default=None,
        pattern=r"^(([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d)?$",
        description="'22:00-07:00'; '' for never quiet; null for the platform default.",
    )
    email: str | None = Field(default=None, pattern=EMAIL.pattern, description="E-mail address.")

    @field_validator("channels")
    @classmethod
    def _once_each(cls, channels: list[ChannelName]) -> list[ChannelName]:
        return list(dict.fromkeys(channels))


async def preferences_for(session: AsyncSession, recipient: Recipient) -> Preferences | None:
    """Return the preferences of the most specific subject of recipient that has some."""
    subjects = recipient.subjects()
    rows = {
        row.subject: row
        for row in await session.scalars(
            select(NotifyPreference).where(NotifyPreference.subject.in_(subjects))
        )
    }
    for subject in subjects:
        if (row := rows.get(subject)) is not None:
            return Preferences(
                channels=row.channels,
                language=row.language,
                quiet_hours=row.quiet_hours,
                email=row.email,
            )
    return None


async def set_preferences(
    session: AsyncSession, *, subject: str, preferences: Preferences
) -> NotifyPreference:
    """Store the preferences of a subject ('user:<id>', 'phone:<digits>', 'email:<address>')."""
    kind, _, key = subject.partition(":")
    if kind not in ("user", "phone", "email") or not key:
        raise ValueError(f"subject must be user:<id>, phone:<digits> or email:<address>: {subject}")
    if kind == "phone":
        subject = f"phone:{normalise_phone(key)}"
    elif kind == "email":
        subject = f"email:{key.lower()}"
    row = await session.scalar(select(NotifyPreference).where(NotifyPreference.subject == subject))
    if row is None:
        row = NotifyPreference(subject=subject)
        session.add(row)
    row.channels = list(preferences.channels)
    row.language = preferences.language
    row.quiet_hours = preferences.quiet_hours
    row.email = preferences.email
    await session.flush()
    return row
