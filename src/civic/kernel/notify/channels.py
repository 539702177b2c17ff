"""Channels behind one protocol: the dev inbox, an SMS gateway and a messenger webhook.

A channel sends one rendered delivery. It answers with a `Sent`, or raises `TryAgain` (the
gateway is down or busy: retried with backoff) or `GiveUp` (the gateway refused this message:
retrying cannot help). Web Push and e-mail live in their own modules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from civic.kernel.db import transaction
from civic.kernel.notify.models import DevInboxMessage

# Statuses that say "later", not "never": timeouts, too early, rate limits.
_RETRYABLE_4XX = {408, 425, 429}


@dataclass(frozen=True)
class Outgoing:
    """One delivery, rendered, as a channel sends it."""

    delivery_id: str
    message_id: str
    idempotency_key: str
    channel: str
    address: str
    template: str
    urgency: str
    title: str
    body: str
    html: str | None = None
    link: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    organisation_id: str | None = None


@dataclass(frozen=True)
class Sent:
    """A channel's receipt: the gateway's status and message id, when it gives them."""

    status_code: int | None = None
    provider_id: str | None = None
    detail: str = "sent"


class ChannelFailure(Exception):
    """A send that did not go through."""

    def __init__(self, detail: str, *, status_code: int | None = None) -> None:
        """Say what went wrong, with the gateway's status code when there was one."""
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


class TryAgain(ChannelFailure):
    """The gateway could not take the message now; retrying later may work."""


class GiveUp(ChannelFailure):
    """The gateway refused the message; retrying the same request cannot work."""


class Channel(Protocol):
    """Sends deliveries of one transport (dev_inbox, http_sms, web_push, ...)."""

    transport: str

    async def send(self, outgoing: Outgoing) -> Sent:
        """Send one delivery; raise TryAgain or GiveUp when it does not go through."""

    async def close(self) -> None:
        """Release connections."""


class DevInboxChannel:
    """The embedded default: keeps each message in a table shown at /dev/inbox."""

    transport = "dev_inbox"

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Store messages through sessions of the platform's database."""
        self.sessions = sessions

    async def send(self, outgoing: Outgoing) -> Sent:
        """Store the rendered message; a repeated send of one delivery stores nothing new."""
        try:
            async with transaction(self.sessions) as session:
                session.add(
                    DevInboxMessage(
                        delivery_id=outgoing.delivery_id,
                        message_id=outgoing.message_id,
                        organisation_id=outgoing.organisation_id,
                        channel=outgoing.channel,
                        address=outgoing.address,
                        template=outgoing.template,
                        urgency=outgoing.urgency,
                        title=outgoing.title,
                        body=outgoing.body,
                        html=outgoing.html,
                        link=outgoing.link,
                    )
                )
        except IntegrityError:
            return Sent(detail="already in the dev inbox")
        return Sent(detail="kept in the dev inbox")

    async def close(self) -> None:
        """Nothing to release."""


def judge(response: httpx.Response, what: str) -> Sent:
    """Turn a gateway's answer into a receipt, or raise TryAgain (5xx, 429) or GiveUp (4xx)."""
    status = response.status_code
    if 200 <= status < 300:
        provider_id: str | None = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            found = body.get("id") or body.get("message_id") or body.get("messageId")
            provider_id = str(found)[:200] if found is not None else None
        return Sent(status_code=status, provider_id=provider_id)
    detail = f"{what} answered {status}: {response.text[:500]}"
    if status >= 500 or status in _RETRYABLE_4XX:
        raise TryAgain(detail, status_code=status)
    raise GiveUp(detail, status_code=status)


class _HttpChannel(ABC):
    """A channel that POSTs JSON to one URL with an API key."""

    transport = "http"
    what = "gateway"

    def __init__(self, url: str, *, api_key: str | None, timeout: float) -> None:
        """Post to url, sending api_key as X-Api-Key."""
        self.url = url
        self.api_key = api_key
        self.client = httpx.AsyncClient(timeout=timeout)

    @abstractmethod
    def payload(self, outgoing: Outgoing) -> dict[str, Any]:
        """Return the JSON body for one delivery."""

    async def send(self, outgoing: Outgoing) -> Sent:
        """POST the delivery; the idempotency key lets the gateway drop a repeated send."""
        headers = {"Idempotency-Key": outgoing.idempotency_key}
        if self.api_key:
            headers["X-Api-Key"] = self.api_key
        try:
            response = await self.client.post(
                self.url, json=self.payload(outgoing), headers=headers
            )
        except httpx.TransportError as exc:
            raise TryAgain(f"{self.what} unreachable: {exc!r}") from exc
        return judge(response, self.what)

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.client.aclose()


class HttpSmsChannel(_HttpChannel):
    """SMS/LMS through an HTTP gateway that takes JSON."""

    transport = "http_sms"
    what = "SMS gateway"

    def __init__(self, url: str, *, api_key: str | None, sender: str, timeout: float) -> None:
        """Post to url as sender."""
        super().__init__(url, api_key=api_key, timeout=timeout)
        self.sender = sender

    def payload(self, outgoing: Outgoing) -> dict[str, Any]:
        """Return the gateway's JSON: one message, SMS up to 90 bytes and LMS beyond."""
        body: dict[str, Any] = {
            "message_id": outgoing.delivery_id,
            "type": outgoing.meta.get("sms_type", "SMS"),
            "from": self.sender,
            "to": outgoing.address,
            "text": outgoing.body,
        }
        if body["type"] == "LMS" and outgoing.title:
            body["subject"] = outgoing.title
        return body


class WebhookMessengerChannel(_HttpChannel):
    """A KakaoTalk-channel-style messenger: an informational message with a link button."""

    transport = "messenger_webhook"
    what = "messenger webhook"

    def __init__(self, url: str, *, api_key: str | None, sender_key: str, timeout: float) -> None:
        """Post to url for the channel sender_key."""
        super().__init__(url, api_key=api_key, timeout=timeout)
        self.sender_key = sender_key

    def payload(self, outgoing: Outgoing) -> dict[str, Any]:
        """Return the webhook's JSON: template code, recipient, text and a web-link button."""
        body: dict[str, Any] = {
            "senderKey": self.sender_key,
            "templateCode": outgoing.template,
            "messageId": outgoing.delivery_id,
            "recipientNo": outgoing.address,
            "title": outgoing.title,
            "content": outgoing.body,
            "urgent": outgoing.urgency == "emergency",
            "buttons": [],
        }
        if outgoing.link:
            body["buttons"].append(
                {
                    "type": "WL",
                    "name": outgoing.meta.get("button", "자세히 보기"),
                    "linkMo": outgoing.link,
                    "linkPc": outgoing.link,
                }
            )
        return body
