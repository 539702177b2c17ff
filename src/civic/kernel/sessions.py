"""Browser sessions kept server-side, and login attempts counted to stop guessing."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Boolean, ForeignKey, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from civic.kernel.db import Base, TimestampMixin, UtcDateTime, utcnow
from civic.kernel.identity import Principal, User, principal_for, token_digest


class BrowserSession(TimestampMixin, Base):
    """A signed-in browser; the cookie holds a secret whose digest is the key."""

    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship(lazy="joined")


class LoginAttempt(Base):
    """One try to sign in, kept to limit guessing per account and per address."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)


async def start_browser_session(
    session: AsyncSession,
    *,
    user: User,
    lifetime: timedelta,
    ip: str | None,
    user_agent: str | None,
) -> str:
    """Start a session for user and return the secret for the cookie."""
    secret = secrets.token_urlsafe(32)
    session.add(
        BrowserSession(
            id=token_digest(secret),
            user_id=user.id,
            expires_at=utcnow() + lifetime,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    await session.flush()
    return secret


async def principal_from_browser_session(session: AsyncSession, *, secret: str) -> Principal | None:
    """Resolve a session cookie to its principal while it is live."""
    row = await session.get(BrowserSession, token_digest(secret))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    if not row.user.is_active:
        return None
    await session.refresh(row.user, ["grants"])
    return principal_for(row.user)


async def end_browser_session(session: AsyncSession, *, secret: str) -> None:
    """Sign a browser out."""
    row = await session.get(BrowserSession, token_digest(secret))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


async def login_locked_out(
    session: AsyncSession, *, username: str, ip: str, max_failures: int, window: timedelta
) -> bool:
    """Whether the account or the address failed too often within the window."""
    since = utcnow() - window
    failures = select(func.count()).where(
        LoginAttempt.succeeded.is_(False),
        LoginAttempt.at >= since,
    )
    by_account = await session.scalar(failures.where(LoginAttempt.username == username))
    # An address may try several accounts; give it more room than one account gets.
    by_address = await session.scalar(failures.where(LoginAttempt.ip == ip))
    return (by_account or 0) >= max_failures or (by_address or 0) >= max_failures * 4


async def record_login_attempt(
    session: AsyncSession, *, username: str, ip: str, succeeded: bool
) -> None:
    """Remember one try to sign in."""
    session.add(LoginAttempt(username=username, ip=ip, succeeded=succeeded))
    await session.flush()


async def forget_old_login_attempts(session: AsyncSession, *, before: datetime) -> None:
    """Drop attempts older than before; they no longer count."""
    await session.execute(delete(LoginAttempt).where(LoginAttempt.at < before))
