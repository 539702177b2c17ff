"""Signed, expiring links that open one record to a citizen without an account."""

from __future__ import annotations

from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.db import utcnow
from civic.kernel.identity import CitizenLink, CitizenLinkScope, Principal


class CitizenLinkError(Exception):
    """A citizen link that does not open the asked record; the message says why."""


def link_serializer(secret: str) -> URLSafeSerializer:
    """Return the serializer that signs citizen link ids."""
    return URLSafeSerializer(secret, salt="civic.citizen-link")


async def issue_citizen_link(
    session: AsyncSession,
    *,
    secret: str,
    organisation_id: str,
    purpose: str,
    subject_type: str,
    subject_id: str,
    valid_for: timedelta,
) -> str:
    """Record a link for one purpose on one record and return its signed token."""
    link = CitizenLink(
        organisation_id=organisation_id,
        purpose=purpose,
        subject_type=subject_type,
        subject_id=subject_id,
        expires_at=utcnow() + valid_for,
    )
    session.add(link)
    await session.flush()
    return str(link_serializer(secret).dumps(link.id))


async def open_citizen_link(
    session: AsyncSession,
    *,
    secret: str,
    token: str,
    purpose: str,
    subject_type: str,
    subject_id: str,
) -> Principal:
    """Check that token opens purpose on exactly this record now, and return its principal."""
    try:
        link_id = link_serializer(secret).loads(token)
    except BadSignature as exc:
        raise CitizenLinkError("링크가 올바르지 않습니다 (the link is not valid).") from exc
    link = await session.get(CitizenLink, link_id) if isinstance(link_id, str) else None
    if link is None:
        raise CitizenLinkError("링크가 올바르지 않습니다 (the link is not valid).")
    if link.revoked_at is not None:
        raise CitizenLinkError("취소된 링크입니다 (the link was revoked).")
    if link.expires_at <= utcnow():
        raise CitizenLinkError("만료된 링크입니다 (the link has expired).")
    if (link.purpose, link.subject_type, link.subject_id) != (purpose, subject_type, subject_id):
        raise CitizenLinkError("이 링크로는 볼 수 없는 기록입니다 (not this record's link).")
    link.uses += 1
    link.last_used_at = utcnow()
    return Principal(
        user_id=None,
        name=f"citizen-link:{link.id[:8]}",
        organisation_id=link.organisation_id,
        via="link",
        link=CitizenLinkScope(
            link_id=link.id,
            purpose=link.purpose,
            subject_type=link.subject_type,
            subject_id=link.subject_id,
        ),
    )


async def revoke_citizen_link(session: AsyncSession, *, link_id: str) -> None:
    """Revoke a link so that it opens nothing any more."""
    link = await session.get(CitizenLink, link_id)
    if link is not None and link.revoked_at is None:
        link.revoked_at = utcnow()
