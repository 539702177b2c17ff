"""The `/ws` endpoint: who is connecting, from which page, and what it asks to follow.

Client → server, one JSON object per text frame:

    {"type": "subscribe", "topic": "incidents", "since": 41, "epoch": "…"}   since/epoch optional
    {"type": "unsubscribe", "topic": "incidents"}
    {"type": "ping"}

Server → client: {"type": "subscribed" | "reset", "topic", "seq", "epoch"} (reset: messages were
missed that are no longer kept, reload the state), {"type": "message", "topic", "seq", "epoch",
"data"}, {"type": "unsubscribed", "topic"}, {"type": "pong"} and {"type": "error", "status",
"detail", "topic"?}. Close codes: 4401 no valid credentials, 4008 too slow (reconnect and
resume), 1001 server going away; a foreign Origin is refused before the handshake completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocketDisconnect

from civic.kernel import audit
from civic.kernel.citizen_links import CitizenLinkError, link_serializer, open_citizen_link
from civic.kernel.db import transaction
from civic.kernel.identity import CitizenLink, Principal, principal_from_api_token
from civic.kernel.realtime.connection import UNAUTHENTICATED, Connection
from civic.kernel.realtime.hub import Hub, TopicError, encode, realtime_of
from civic.kernel.runtime import Kernel
from civic.kernel.sessions import principal_from_browser_session
from civic.kernel.settings import KernelSettings
from civic.kernel.web.deps import SESSION_COOKIE

router = APIRouter()
log = structlog.get_logger("civic.realtime")
CLOSE_TIMEOUT_S = 5.0


class Unauthenticated(Exception):
    """Credentials were given but open nothing."""


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    port = parts.port or default
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def origin_allowed(websocket: WebSocket, settings: KernelSettings) -> bool:
    """Whether the page that opened the socket is ours (non-browser clients send no Origin)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    allowed = {_origin_of(settings.web.base_url)}
    allowed |= {_origin_of(o) for o in settings.realtime.allowed_origins}
    host = websocket.headers.get("host")
    if host:
        scheme = "https" if websocket.url.scheme == "wss" else "http"
        allowed.add(_origin_of(f"{scheme}://{host}"))
    return _origin_of(origin) in allowed


async def resolve_principal(websocket: WebSocket, kernel: Kernel) -> Principal | None:
    """Return who connects: bearer token, citizen link (?link=) or session cookie, in that order."""
    authorization = websocket.headers.get("authorization", "")
    link_token = websocket.query_params.get("link")
    cookie = websocket.cookies.get(SESSION_COOKIE)
    async with transaction(kernel.sessions) as session:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("Authorization 헤더는 'Bearer <토큰>' 형식이어야 합니다.")
            principal = await principal_from_api_token(session, token=token.strip())
            if principal is None:
                raise Unauthenticated("토큰이 없거나 만료되었습니다.")
            return principal
        if link_token:
            try:
                return await principal_from_link(session, secret=kernel.secret, token=link_token)
            except CitizenLinkError as exc:
                raise Unauthenticated(str(exc)) from exc
        if cookie:
            return await principal_from_browser_session(session, secret=cookie)
    return None


async def principal_from_link(session: AsyncSession, *, secret: str, token: str) -> Principal:
    """Open a citizen link for whatever record it names; raise CitizenLinkError if it cannot."""
    try:
        link_id = link_serializer(secret).loads(token)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad link
        raise CitizenLinkError("링크가 올바르지 않습니다 (the link is not valid).") from exc
    link = await session.get(CitizenLink, link_id) if isinstance(link_id, str) else None
    if link is None:
        raise CitizenLinkError("링크가 올바르지 않습니다 (the link is not valid).")
    return await open_citizen_link(
        session,
        secret=secret,
        token=token,
        purpose=link.purpose,
        subject_type=link.subject_type,
        subject_id=link.subject_id,
    )


@router.websocket("/ws")
async def live_updates(websocket: WebSocket) -> None:
    """Serve one browser: authenticate, then follow the topics it subscribes to."""
    kernel: Kernel = websocket.app.state.kernel
    hub = realtime_of(kernel)
    if not origin_allowed(websocket, kernel.settings):
        log.warning("realtime_foreign_origin", origin=websocket.headers.get("origin"))
        await websocket.close(code=1008)  # before accept: the handshake is answered 403
        return
    try:
        principal = await resolve_principal(websocket, kernel)
    except Unauthenticated as exc:
        await _refuse(websocket, str(exc))
        return
    if principal is None:
        await _refuse(websocket, "로그인이 필요합니다 (sign in, or open the link again).")
        return
    await websocket.accept()
    connection = Connection(
        websocket, principal, capacity=kernel.settings.realtime.send_queue, stats=hub.stats
    )
    hub.attach(connection)
    tasks = [
        asyncio.create_task(connection.run_sender(), name="civic-ws-send"),
        asyncio.create_task(_read(websocket, hub, kernel, connection), name="civic-ws-read"),
        asyncio.create_task(connection.wait_closing(), name="civic-ws-closing"),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.detach(connection)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if connection.close_code is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await websocket.close(connection.close_code, connection.close_reason)


async def _refuse(websocket: WebSocket, reason: str) -> None:
    # Accept first: a browser cannot read why a handshake failed, but it can read a close code.
    await websocket.accept()
    await websocket.close(UNAUTHENTICATED, reason[:120])


def _error(connection: Connection, status: int, detail: str, topic: str | None = None) -> None:
    document: dict[str, Any] = {"type": "error", "status": status, "detail": detail}
    if topic is not None:
        document["topic"] = topic
    connection.offer(encode(document), droppable=False)


async def _read(websocket: WebSocket, hub: Hub, kernel: Kernel, connection: Connection) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            text = received.get("text")
            try:
                request = json.loads(text) if text is not None else None
            except ValueError:
                request = None
            if not isinstance(request, dict) or not isinstance(request.get("type"), str):
                hub.stats.malformed += 1
                log.info("realtime_malformed", principal=connection.principal.name)
                _error(connection, 400, 'JSON 객체 {"type": ...}를 보내 주세요 (malformed).')
                continue
            await _handle(request, hub, kernel, connection)


async def _handle(
    request: dict[str, Any], hub: Hub, kernel: Kernel, connection: Connection
) -> None:
    kind = request["type"]
    if kind == "ping":
        connection.offer(encode({"type": "pong"}), droppable=False)
        return
    topic = request.get("topic")
    if kind not in ("subscribe", "unsubscribe") or not isinstance(topic, str):
        hub.stats.malformed += 1
        _error(
            connection, 400, "type은 subscribe, unsubscribe, ping 중 하나이고 topic은 글자입니다."
        )
        return
    if kind == "unsubscribe":
        hub.unsubscribe(connection, topic)
        connection.offer(encode({"type": "unsubscribed", "topic": topic}), droppable=False)
        return
    since, epoch = request.get("since"), request.get("epoch")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        hub.stats.malformed += 1
        _error(connection, 400, "since는 0 이상의 정수입니다.", topic)
        return
    if epoch is not None and not isinstance(epoch, str):
        hub.stats.malformed += 1
        _error(connection, 400, "epoch는 글자입니다.", topic)
        return
    if topic in connection.topics:
        hub.unsubscribe(connection, topic)  # a second subscribe resumes afresh
    elif len(connection.topics) >= kernel.settings.realtime.max_topics:
        _error(connection, 429, "구독할 수 있는 주제 수를 넘었습니다 (too many topics).", topic)
        return
    try:
        rule = hub.check(connection.principal, topic)
    except TopicError as exc:
        _error(connection, exc.status, exc.detail, topic)
        return
    if rule.personal:
        async with transaction(kernel.sessions) as session:
            await audit.record_personal_read(
                session,
                principal=connection.principal,
                subject_type="realtime_topic",
                subject_id=topic[:64],
                fields=[rule.prefix],
            )
    hub.subscribe(connection, topic, since=since, epoch=epoch)
