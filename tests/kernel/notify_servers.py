"""Real servers on 127.0.0.1 for the notification tests: HTTP capture, SMTP, a push service."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import http_ece
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi import FastAPI
from sqlalchemy import delete

from civic.app import create_app
from civic.kernel.db import transaction
from civic.kernel.notify import NotificationDelivery, Notifier, notifier_of
from civic.settings import Settings


@dataclass
class Captured:
    """One request the capture server received."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CaptureServer:
    """An HTTP server that records every request and answers with scripted statuses."""

    requests: list[Captured] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    by_path: dict[str, int] = field(default_factory=dict)
    default_status: int = 200
    port: int = 0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(Captured(request.method, request.path, headers, await request.read()))
        prefix = next((p for p in self.by_path if request.path.startswith(p)), None)
        if prefix is not None:
            status = self.by_path[prefix]
        else:
            status = self.answers.pop(0) if self.answers else self.default_status
        if status >= 400:
            return web.json_response({"error": f"scripted {status}"}, status=status)
        return web.json_response({"id": f"gw-{len(self.requests)}"}, status=status)


@asynccontextmanager
async def capture_server() -> AsyncIterator[CaptureServer]:
    """Start a capture server on a free port of 127.0.0.1."""
    server = CaptureServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MailSink:
    """What the SMTP server received, and whom it refuses."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"smtp-secret"
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


@asynccontextmanager
async def smtp_server() -> AsyncIterator[tuple[MailSink, int]]:
    """Start aiosmtpd on 127.0.0.1 (in its thread) with login over plain text allowed."""
    sink = MailSink()
    port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        authenticator=sink.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A browser's push subscription keys, as PushManager makes them."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def keys(self) -> dict[str, str]:
        return {"p256dh": self.p256dh, "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
        )
        return json.loads(plain)


def verify_vapid(authorization: str, *, audience: str, subject: str) -> str:
    """Check a `vapid t=<jwt>,k=<key>` header as a push service does; return the key."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", authorization
    values = dict(part.split("=", 1) for part in params.split(","))
    token, key = values["t"], values["k"]
    header_b64, claims_b64, signature_b64 = token.split(".")
    assert json.loads(unb64url(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    claims = json.loads(unb64url(claims_b64))
    assert claims["aud"] == audience and claims["sub"] == subject
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    assert datetime.now(UTC) < expires <= datetime.now(UTC) + timedelta(hours=24)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    signature = unb64url(signature_b64)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    # Raises InvalidSignature when the token was not signed by the key it names.
    public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    return key


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@asynccontextmanager
async def notify_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    top: dict[str, Any] | None = None,
    **notify: Any,
) -> AsyncIterator[FastAPI]:
    """A started platform whose notify section is `notify` (the worker off unless asked).

    `top` replaces other settings (env, web, ...).
    """
    section = {"worker": False, **notify}
    changed = Settings(**{**settings.model_dump(), **(top or {}), "notify": section})
    application = create_app(changed, services=[])
    if clock is not None:
        notifier_of(application.state.kernel).clock = clock
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            # The database outlives the test: leave nothing due for the next app's worker.
            async with transaction(application.state.kernel.sessions) as session:
                await session.execute(
                    delete(NotificationDelivery).where(
                        NotificationDelivery.status.in_(["queued", "held", "sending"])
                    )
                )


def notifier(app: FastAPI) -> Notifier:
    return notifier_of(app.state.kernel)
