"""ASGI middleware: request ids with an access log, and a limit on request bodies."""

from __future__ import annotations

import json
import re
import time
import uuid

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civic.kernel.web import i18n

log = structlog.get_logger("civic.http")
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Give every request an id (kept from X-Request-ID when sane) and log its outcome."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap app."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the id to logs and the response, then log method, path, status and time."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _GOOD_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )


class BodyLimitMiddleware:
    """Answer 413 to a body larger than the limit, declared or streamed."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: dict[str, int] | None = None
    ) -> None:
        """Wrap app with a body limit in bytes; `larger` raises it under some path prefixes."""
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    def limit_for(self, path: str) -> int:
        """Return the body limit of a path: uploads may be larger than other requests."""
        raised = [limit for prefix, limit in self.larger.items() if path.startswith(prefix)]
        return max([self.max_bytes, *raised])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, or buffer a streamed body up to the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await self._refuse(scope, send, limit)
                return
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > limit:
                await self._refuse(scope, send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        problem: dict[str, object] = {
            "type": "about:blank",
            "title": "요청이 너무 큽니다",
            "status": 413,
            "detail": f"요청 본문은 {limit} 바이트까지 받습니다.",
            "instance": scope["path"],
        }
        # Like every other problem, name the request so that a person can quote it.
        if request_id := scope.get("state", {}).get("request_id"):
            problem["request_id"] = request_id
        body = json.dumps(problem, ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class LocaleMiddleware:
    """Choose each request's language and activate its catalog."""

    def __init__(self, app: ASGIApp, *, offered: list[str], default: str) -> None:
        """Wrap app with the languages offered."""
        self.app = app
        self.offered = offered
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set request.state.locale and the translations used by templates."""
        if scope["type"] == "http":
            locale = i18n.choose_locale(Request(scope), offered=self.offered, default=self.default)
            scope.setdefault("state", {})["locale"] = locale
            i18n.activate(locale)
        await self.app(scope, receive, send)
