"""Organisations, users, roles per service, API tokens and signed links for citizens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from civic.kernel.db import Base, IdMixin, TimestampMixin, UtcDateTime, utcnow

ALL_SERVICES = "*"
_hasher = PasswordHasher()
# Verifying against this keeps the time of a login for an unknown name like a real one.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Role(StrEnum):
    """What a person may do within one service."""

    CITIZEN = "citizen"
    COLLABORATOR = "collaborator"
    CREW = "crew"
    DISPATCHER = "dispatcher"
    OPERATOR = "operator"
    CLERK = "clerk"
    INSPECTOR = "inspector"
    EXPERT = "expert"
    OFFICER = "officer"
    ADMIN = "admin"


class OrganisationKind(StrEnum):
    """The kinds of public body that run Civic."""

    FIRE_HQ = "fire_hq"
    DISTRICT_OFFICE = "district_office"
    MINISTRY_CENTRE = "ministry_centre"
    OTHER = "other"


class Organisation(IdMixin, TimestampMixin, Base):
    """A public body: a fire headquarters, a district office, a ministry's centre."""

    __tablename__ = "organisations"

    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))


class User(IdMixin, TimestampMixin, Base):
    """A person or device account that belongs to one organisation."""

    __tablename__ = "users"

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    is_device: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class RoleGrant(IdMixin, TimestampMixin, Base):
    """One role of a user in one service ('*' for every service)."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "service", "role"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))

    user: Mapped[User] = relationship(back_populates="grants")


class ApiToken(IdMixin, TimestampMixin, Base):
    """A bearer token for an API client or a device; only its hash is stored."""

    __tablename__ = "api_tokens"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    user: Mapped[User] = relationship(lazy="joined")


class CitizenLink(IdMixin, TimestampMixin, Base):
    """A link that lets a citizen without an account see or act on exactly one record."""

    __tablename__ = "citizen_links"

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    uses: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in person, an API or device token, or a citizen link."""

    user_id: str | None
    name: str
    organisation_id: str
    grants: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    via: str = "session"
    link: CitizenLinkScope | None = None
    display_name: str = ""

    def has_role(self, service: str, *roles: Role) -> bool:
        """Whether any of roles (or admin) is granted in service or in every service."""
        wanted = {r.value for r in roles} | {Role.ADMIN.value}
        return any(s in (service, ALL_SERVICES) and r in wanted for s, r in self.grants)

    def services(self) -> set[str]:
        """Services in which this principal holds any role ('*' means all)."""
        return {s for s, _ in self.grants}


@dataclass(frozen=True, slots=True)
class CitizenLinkScope:
    """What a citizen link opens: one purpose on one record."""

    link_id: str
    purpose: str
    subject_type: str
    subject_id: str


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password in constant-looking time, also for accounts without one."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest under which a secret token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def principal_for(user: User, *, via: str = "session") -> Principal:
    """Build the principal of a loaded user."""
    return Principal(
        user_id=user.id,
        name=user.username,
        organisation_id=user.organisation_id,
        grants=frozenset((g.service, g.role) for g in user.grants),
        via=via,
        display_name=user.display_name,
    )


async def create_organisation(
    session: AsyncSession, *, code: str, name: str, kind: OrganisationKind
) -> Organisation:
    """Create an organisation."""
    organisation = Organisation(code=code, name=name, kind=kind.value)
    session.add(organisation)
    await session.flush()
    return organisation


async def create_user(
    session: AsyncSession,
    *,
    organisation: Organisation,
    username: str,
    display_name: str,
    password: str | None,
    roles: dict[str, list[Role]],
    phone: str | None = None,
    is_device: bool = False,
) -> User:
    """Create a user with roles per service ({'*': [Role.ADMIN]} for every service)."""
    user = User(
        organisation_id=organisation.id,
        username=username,
        display_name=display_name,
        password_hash=hash_password(password) if password else None,
        phone=phone,
        is_device=is_device,
        grants=[
            RoleGrant(service=service, role=role.value)
            for service, granted in roles.items()
            for role in granted
        ],
    )
    session.add(user)
    await session.flush()
    return user


async def find_user(session: AsyncSession, *, username: str) -> User | None:
    """Find an active user by login name."""
    result = await session.execute(
        select(User)
        .where(User.username == username, User.is_active.is_(True))
        .options(selectinload(User.grants))
    )
    return result.scalar_one_or_none()


async def authenticate(session: AsyncSession, *, username: str, password: str) -> User | None:
    """Return the user when the password is right, else None."""
    user = await find_user(session, username=username)
    ok = verify_password(user.password_hash if user else None, password)
    return user if user and ok and not user.is_device else None


async def issue_api_token(
    session: AsyncSession, *, user: User, name: str, valid_for: timedelta | None = None
) -> str:
    """Create a bearer token for user; the secret is returned once and only its hash kept."""
    secret = "civ_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            name=name,
            token_hash=token_digest(secret),
            expires_at=utcnow() + valid_for if valid_for else None,
        )
    )
    await session.flush()
    return secret


async def principal_from_api_token(session: AsyncSession, *, token: str) -> Principal | None:
    """Resolve a bearer token to its principal, if valid, and note its use."""
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
    now = utcnow()
    if row is None or row.revoked_at is not None or not row.user.is_active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    row.last_used_at = now
    await session.refresh(row.user, ["grants"])
    return principal_for(row.user, via="token")


async def revoke_api_token(session: AsyncSession, *, token_id: str) -> None:
    """Revoke a bearer token."""
    row = await session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
