"""CSRF protection: a random cookie and, in forms and headers, its signature."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "civic_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token_for(secret: str, nonce: str) -> str:
    """Return the token that proves a form came from a page we served to this browser."""
    return hmac.new(secret.encode(), f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """Return the token to embed in this request's pages."""
    secret: str = request.app.state.kernel.secret
    # Errors caught outside the middleware stack render without a nonce: no form there.
    nonce: str | None = getattr(request.state, "csrf_nonce", None)
    return csrf_token_for(secret, nonce) if nonce else ""


async def csrf_valid(request: Request) -> bool:
    """Whether an unsafe request carries the token matching its cookie (header or form)."""
    nonce = request.cookies.get(CSRF_COOKIE)
    if not nonce:
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    expected = csrf_token_for(request.app.state.kernel.secret, nonce)
    return given is not None and hmac.compare_digest(given, expected)


class CsrfCookieMiddleware:
    """Give every browser a CSRF nonce cookie, and expose it to the request."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        """Wrap app; secure cookies go over HTTPS only."""
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read or create the nonce and set the cookie when it is new."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = Request(scope).cookies.get(CSRF_COOKIE)
        is_new = not nonce or len(nonce) > 64
        if is_new:
            nonce = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf_nonce"] = nonce

        async def send_with_cookie(message: Message) -> None:
            if is_new and message["type"] == "http.response.start":
                cookie = f"{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Lax"
                if self.secure:
                    cookie += "; Secure"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
