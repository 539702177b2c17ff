"""Web Push (RFC 8030/8291/8292) to the browsers a user subscribed, signed with VAPID."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush_async  # type: ignore[import-untyped]
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.db import transaction, utcnow
from civic.kernel.notify.channels import GiveUp, Outgoing, Sent, TryAgain
from civic.kernel.notify.models import PushSubscription

_GONE = {404, 410}


def load_vapid(private_key: str) -> Any:
    """Load a VAPID private key given as PEM, or as base64url raw (32 bytes) or DER."""
    text = private_key.strip()
    try:
        if "-----BEGIN" in text:
            return Vapid.from_pem(text.encode())
        return Vapid.from_string(text)
    except Exception as exc:
        raise ValueError(
            "CIVIC_NOTIFY__PUSH__VAPID_PRIVATE_KEY is not a P-256 private key (PEM or base64url)"
        ) from exc


def application_server_key(vapid: Any) -> str:
    """Return the public key browsers pass to pushManager.subscribe (base64url, no padding)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def endpoint_digest(endpoint: str) -> str:
    """Return the digest under which an endpoint is unique."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


async def subscribe(
    session: AsyncSession,
    *,
    user_id: str,
    endpoint: str,
    p256dh: str,
    auth: str,
    user_agent: str | None = None,
) -> PushSubscription:
    """Store a browser's subscription for user; a known endpoint is updated and moved to user."""
    digest = endpoint_digest(endpoint)
    row = await session.scalar(
        select(PushSubscription).where(PushSubscription.endpoint_hash == digest)
    )
    if row is None:
        row = PushSubscription(endpoint=endpoint, endpoint_hash=digest, user_id=user_id)
        session.add(row)
    row.user_id = user_id
    row.p256dh = p256dh
    row.auth = auth
    row.user_agent = (user_agent or "")[:300] or None
    await session.flush()
    return row


async def unsubscribe(session: AsyncSession, *, user_id: str, subscription_id: str) -> bool:
    """Remove one of user's subscriptions; return whether there was one."""
    result = await session.execute(
        delete(PushSubscription).where(
            PushSubscription.id == subscription_id, PushSubscription.user_id == user_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def subscriptions_of(session: AsyncSession, *, user_id: str) -> list[PushSubscription]:
    """Return the push subscriptions of a user, oldest first."""
    rows = await session.scalars(
        select(PushSubscription)
        .where(PushSubscription.user_id == user_id)
        .order_by(PushSubscription.created_at)
    )
    return list(rows.all())


class WebPushChannel:
    """Encrypts (aes128gcm) and posts a push to every subscription of the recipient."""

    transport = "web_push"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        private_key: str,
        subject: str,
        ttl: int,
        timeout: float,
    ) -> None:
        """Sign with private_key, naming subject as the contact in the VAPID claims."""
        self.sessions = sessions
        self.vapid = load_vapid(private_key)
        self.public_key = application_server_key(self.vapid)
        self.subject = subject
        self.ttl = ttl
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    async def send(self, outgoing: Outgoing) -> Sent:
        """Push to each browser of the user; gone subscriptions (404, 410) are removed."""
        async with self.sessions() as session:
            targets = await subscriptions_of(session, user_id=outgoing.address)
        if not targets:
            raise GiveUp("the user has no push subscription")
        if self._http is None:
            self._http = aiohttp.ClientSession()
        data = json.dumps(
            {
                "id": outgoing.delivery_id,
                "template": outgoing.template,
                "title": outgoing.title,
                "body": outgoing.body,
                "url": outgoing.link,
                "urgency": outgoing.urgency,
            },
            ensure_ascii=False,
        )
        outcomes = await asyncio.gather(*(self._push(target, data, outgoing) for target in targets))
        delivered = [t.id for t, code in zip(targets, outcomes, strict=True) if code is None]
        gone = [t.id for t, code in zip(targets, outcomes, strict=True) if code in _GONE]
        async with transaction(self.sessions) as session:
            if gone:
                await session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
            if delivered:
                await session.execute(
                    update(PushSubscription)
                    .where(PushSubscription.id.in_(delivered))
                    .values(last_used_at=utcnow())
                )
        if delivered:
            return Sent(status_code=201, detail=f"pushed to {len(delivered)}/{len(targets)}")
        problems = [code for code in outcomes if code is not None]
        retryable = [code for code in problems if code == 0 or code == 429 or code >= 500]
        if retryable:
            raise TryAgain(f"push service answered {problems}", status_code=retryable[0] or None)
        raise GiveUp(f"push service refused: {problems}", status_code=problems[0])

    async def _push(self, target: PushSubscription, data: str, outgoing: Outgoing) -> int | None:
        """Send to one browser; return None when accepted, else the status (0: unreachable)."""
        try:
            await webpush_async(
                subscription_info={
                    "endpoint": target.endpoint,
                    "keys": {"p256dh": target.p256dh, "auth": target.auth},
                },
                data=data,
                vapid_private_key=self.vapid,
                vapid_claims={"sub": self.subject},
                ttl=self.ttl,
                timeout=self.timeout,
                headers={"Urgency": "high" if outgoing.urgency == "emergency" else "normal"},
                aiohttp_session=self._http,
            )
        except WebPushException as exc:
            status = exc.status_code
            return int(status) if isinstance(status, int) else 0
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0
        except ValueError:  # keys that do not decode: this subscription can never work
            return 400
        return None

    async def close(self) -> None:
        """Close the HTTP connections."""
        if self._http is not None:
            await self._http.close()
            self._http = None
