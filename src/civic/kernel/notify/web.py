"""Web of notifications: the development inbox, push subscriptions and own preferences.

Who sees the development inbox: nobody when it is off (404). In development and test anyone
signed in, because it stands in for everybody's phone; in production, where it runs only when
explicitly allowed (a demo server), administrators of every service alone. Every look is audited:
it shows phone numbers and e-mail addresses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from civic.kernel import audit
from civic.kernel.identity import ALL_SERVICES, Principal
from civic.kernel.notify import webpush
from civic.kernel.notify.models import DevInboxMessage, NotificationDelivery, NotificationMessage
from civic.kernel.notify.notifier import Notifier, notifier_of
from civic.kernel.notify.preferences import (
    Preferences,
    Recipient,
    normalise_phone,
    preferences_for,
    set_preferences,
)
from civic.kernel.notify.templates import linkify
from civic.kernel.settings import Environment
from civic.kernel.web.deps import DbSession, SignedIn, audit_context, kernel_of
from civic.kernel.web.problems import Problem
from civic.kernel.web.templating import render

_METHODS_BY_PATH: dict[str, set[str]] = {}


class _PathRoute(APIRoute):
    """A route whose 405 answer names every method of its path, not only its own (RFC 9110)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Remember this route's methods under its path."""
        super().__init__(path, endpoint, **kwargs)
        _METHODS_BY_PATH.setdefault(self.path, set()).update(self.methods or ())

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse other methods with the Allow header of the whole path."""
        if self.methods and scope["method"] not in self.methods:
            allowed = ", ".join(sorted(_METHODS_BY_PATH.get(self.path, self.methods)))
            raise HTTPException(status_code=405, headers={"Allow": allowed})
        await super().handle(scope, receive, send)


pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["notify"], route_class=_PathRoute)


class DevInboxItem(BaseModel):
    """A message for the development inbox, as rendered for its channel."""

    id: str = Field(description="Delivery id.")
    message_id: str
    created_at: datetime
    received_at: datetime | None = Field(description="When the inbox got it; null while waiting.")
    channel: str = Field(description="Channel it stands in for: sms, push, messenger, email.")
    address: str
    recipient_name: str | None
    template: str
    urgency: str
    status: str = Field(description="queued, held, sending, sent or failed.")
    held_until: datetime | None
    attempts: int
    title: str
    body: str
    html: str | None
    link: str | None


class DevInboxList(BaseModel):
    """Messages of the development inbox, newest first."""

    items: list[DevInboxItem]


def _dev_notifier(request: Request, principal: Principal) -> Notifier:
    kernel = kernel_of(request)
    notifier = notifier_of(kernel)
    if not notifier.dev_inbox_on:
        raise Problem(404, "개발용 받은편지함이 꺼져 있습니다 (CIVIC_NOTIFY__DEV_INBOX).")
    if kernel.settings.env is Environment.PRODUCTION and not principal.has_role(ALL_SERVICES):
        raise Problem(403, "운영 환경에서는 관리자만 개발용 받은편지함을 볼 수 있습니다.")
    return notifier


async def _inbox(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    address: str | None,
    template: str | None,
    status: str | None,
    limit: int,
) -> list[DevInboxItem]:
    _dev_notifier(request, principal)
    delivery = NotificationDelivery
    stmt = (
        select(delivery, DevInboxMessage.received_at)
        .outerjoin(DevInboxMessage, DevInboxMessage.delivery_id == delivery.id)
        .where(delivery.transport == "dev_inbox")
        .order_by(delivery.created_at.desc(), delivery.id.desc())
        .limit(limit)
    )
    if address:
        # People type phone numbers with dashes; they are stored as digits.
        if re.fullmatch(r"\+?[\d\s-]{3,40}", address):
            address = normalise_phone(address)
        stmt = stmt.where(delivery.address == address)
    if status:
        stmt = stmt.where(delivery.status == status)
    if template:
        stmt = stmt.join(NotificationMessage, NotificationMessage.id == delivery.message_id).where(
            NotificationMessage.template == template
        )
    items = []
    for row, received_at in (await session.execute(stmt)).all():
        items.append(
            DevInboxItem(
                id=row.id,
                message_id=row.message_id,
                created_at=row.created_at,
                received_at=received_at,
                channel=row.channel,
                address=row.address,
                recipient_name=row.message.recipient.get("name"),
                template=row.message.template,
                urgency=row.message.urgency,
                status=row.status,
                held_until=row.held_until,
                attempts=row.attempts,
                title=row.title,
                body=row.body,
                html=row.html,
                link=row.link,
            )
        )
    await audit.record_personal_read(
        session,
        principal=principal,
        subject_type="notify_dev_inbox",
        subject_id="list",
        fields=["address"],
        context=audit_context(request),
    )
    return items


Address = Annotated[str | None, Query(max_length=320, description="Only this address.")]
TemplateName = Annotated[str | None, Query(max_length=120, description="Only this kind.")]
Status = Annotated[
    str | None, Query(pattern="^(queued|held|sending|sent|failed)$", description="Only this.")
]
Limit = Annotated[int, Query(ge=1, le=500, description="Most messages returned.")]


@api.get("/api/dev/inbox")
async def dev_inbox_api(
    request: Request,
    session: DbSession,
    principal: SignedIn,
    address: Address = None,
    template: TemplateName = None,
    status: Status = None,
    limit: Limit = 100,
) -> DevInboxList:
    """List what the development inbox received or waits for, newest first (for tests)."""
    items = await _inbox(
        request, session, principal, address=address, template=template, status=status, limit=limit
    )
    return DevInboxList(items=items)


@pages.get("/dev/inbox")
async def dev_inbox_page(
    request: Request,
    session: DbSession,
    principal: SignedIn,
    address: Address = None,
    limit: Limit = 100,
) -> Response:
    """Show every message the development inbox got, with links to click."""
    items = await _inbox(
        request, session, principal, address=address, template=None, status=None, limit=limit
    )
    shown = [(item, linkify(item.body)) for item in items]
    return render(request, "dev/inbox.html", {"items": shown, "address": address or ""})


class PushKeys(BaseModel):
    """The keys of a browser's PushSubscription (base64url)."""

    model_config = ConfigDict(extra="ignore")

    # The patterns say it all: 65 bytes starting 0x04 (an uncompressed point), and 16 bytes.
    p256dh: str = Field(
        pattern=r"^B[A-P][A-Za-z0-9_-]{85}=?$",
        description="The browser's uncompressed P-256 public key, base64url.",
    )
    auth: str = Field(
        pattern=r"^[A-Za-z0-9_-]{22}(==)?$", description="The browser's 16-byte secret, base64url."
    )


class PushSubscriptionCreate(BaseModel):
    """A browser's PushSubscription as `subscription.toJSON()` gives it."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(
        max_length=2000, pattern=r"^https?://[^\s/]+/?\S*$", description="Push service URL."
    )
    keys: PushKeys


class PushSubscriptionRead(BaseModel):
    """A stored push subscription."""

    id: str
    endpoint: str
    created_at: datetime


class PushKey(BaseModel):
    """The application server key browsers subscribe with."""

    public_key: str


def _user_of(principal: Principal) -> str:
    if principal.user_id is None:
        raise Problem(403, "계정으로 로그인해야 합니다.")
    return principal.user_id


@api.get("/api/notify/push/key")
async def push_key(request: Request) -> PushKey:
    """Return the VAPID public key for `pushManager.subscribe`."""
    key = notifier_of(kernel_of(request)).push_public_key
    if key is None:
        raise Problem(
            404, "Web Push가 설정되지 않았습니다 (CIVIC_NOTIFY__PUSH__VAPID_PRIVATE_KEY)."
        )
    return PushKey(public_key=key)


@api.post("/api/notify/push/subscriptions", status_code=201)
async def add_push_subscription(
    request: Request, session: DbSession, principal: SignedIn, body: PushSubscriptionCreate
) -> PushSubscriptionRead:
    """Register this browser's push subscription for the signed-in user."""
    production = kernel_of(request).settings.env is Environment.PRODUCTION
    schemes = ("https://",) if production else ("https://", "http://")
    if not body.endpoint.startswith(schemes):
        raise Problem(422, f"endpoint must be a URL starting with {' or '.join(schemes)}")
    row = await webpush.subscribe(
        session,
        user_id=_user_of(principal),
        endpoint=body.endpoint,
        p256dh=body.keys.p256dh,
        auth=body.keys.auth,
        user_agent=request.headers.get("user-agent"),
    )
    return PushSubscriptionRead(id=row.id, endpoint=row.endpoint, created_at=row.created_at)


@api.get("/api/notify/push/subscriptions")
async def list_push_subscriptions(
    session: DbSession, principal: SignedIn
) -> list[PushSubscriptionRead]:
    """List the signed-in user's push subscriptions."""
    rows = await webpush.subscriptions_of(session, user_id=_user_of(principal))
    return [
        PushSubscriptionRead(id=r.id, endpoint=r.endpoint, created_at=r.created_at) for r in rows
    ]


@api.delete("/api/notify/push/subscriptions/{subscription_id}", status_code=204)
async def remove_push_subscription(
    session: DbSession, principal: SignedIn, subscription_id: str
) -> Response:
    """Remove one of the signed-in user's push subscriptions."""
    removed = await webpush.unsubscribe(
        session, user_id=_user_of(principal), subscription_id=subscription_id
    )
    if not removed:
        raise Problem(404, f"푸시 구독 '{subscription_id}'이 없습니다.")
    return Response(status_code=204)


@api.get("/api/notify/preferences")
async def my_preferences(session: DbSession, principal: SignedIn) -> Preferences:
    """Return how the signed-in user wants to be notified (empty: the platform's defaults)."""
    found = await preferences_for(session, Recipient(user_id=_user_of(principal)))
    return found or Preferences()


@api.put("/api/notify/preferences")
async def change_my_preferences(
    session: DbSession, principal: SignedIn, body: Preferences
) -> Preferences:
    """Set the signed-in user's channels in order, language, quiet hours and e-mail."""
    await set_preferences(session, subject=f"user:{_user_of(principal)}", preferences=body)
    return body
