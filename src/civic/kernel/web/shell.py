"""Pages of the shell: sign in and out, the home page, language choice, map boundaries."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from civic.kernel import audit
from civic.kernel.boundaries import boundary_path
from civic.kernel.identity import authenticate, find_user
from civic.kernel.sessions import (
    end_browser_session,
    login_locked_out,
    record_login_attempt,
    start_browser_session,
)
from civic.kernel.web.deps import (
    SESSION_COOKIE,
    DbSession,
    OptionalPrincipal,
    audit_context,
    csrf_protected,
    kernel_of,
)
from civic.kernel.web.i18n import LANG_COOKIE
from civic.kernel.web.i18n import gettext as _
from civic.kernel.web.problems import Problem
from civic.kernel.web.templating import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Return a local path to go to after signing in; anything else goes home."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
async def login_page(request: Request, principal: OptionalPrincipal, next: str = "/") -> Response:
    """Show the sign-in form."""
    if principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next), "error": None, "username": ""})


@router.post("/login", dependencies=[Depends(csrf_protected)])
async def login(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    """Check the password, limit guessing, start a session and audit the outcome."""
    kernel = kernel_of(request)
    security = kernel.settings.security
    ip = request.client.host if request.client else "unknown"
    username = username.strip()
    context = audit_context(request)
    if await login_locked_out(
        session,
        username=username,
        ip=ip,
        max_failures=security.login_max_failures,
        window=timedelta(minutes=security.login_window_minutes),
    ):
        minutes = int(security.login_window_minutes)
        return render(
            request,
            "login.html",
            {
                "next": safe_next(next),
                "username": username,
                "error": _(
                    "로그인 시도가 너무 많습니다. {minutes}분 후에 다시 시도해 주세요."
                ).format(minutes=minutes),
            },
            status_code=429,
            headers={"Retry-After": str(minutes * 60)},
        )
    user = await authenticate(session, username=username, password=password)
    await record_login_attempt(session, username=username, ip=ip, succeeded=user is not None)
    if user is None:
        known = await find_user(session, username=username)
        await audit.record(
            session,
            principal=None,
            actor=username[:120] or "anonymous",
            action=audit.AuditAction.LOGIN_FAILED,
            subject_type="user",
            subject_id=known.id if known else None,
            organisation_id=known.organisation_id if known else None,
            context=context,
        )
        return render(
            request,
            "login.html",
            {
                "next": safe_next(next),
                "username": username,
                "error": _("아이디 또는 비밀번호가 맞지 않습니다."),
            },
            status_code=401,
        )
    secret = await start_browser_session(
        session,
        user=user,
        lifetime=timedelta(hours=security.session_hours),
        ip=ip,
        user_agent=request.headers.get("user-agent"),
    )
    await audit.record(
        session,
        principal=None,
        actor=user.username,
        action=audit.AuditAction.LOGIN,
        subject_type="user",
        subject_id=user.id,
        organisation_id=user.organisation_id,
        context=context,
    )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(security.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=security.cookie_secure,
    )
    return response


@router.post("/logout", dependencies=[Depends(csrf_protected)])
async def logout(request: Request, session: DbSession, principal: OptionalPrincipal) -> Response:
    """End the browser session."""
    if (secret := request.cookies.get(SESSION_COOKIE)) and principal is not None:
        await end_browser_session(session, secret=secret)
        await audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.LOGOUT,
            subject_type="user",
            subject_id=principal.user_id,
            context=audit_context(request),
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
async def home(request: Request, principal: OptionalPrincipal) -> Response:
    """Show the services this person may use, and the map."""
    if principal is None or principal.via == "link":
        return RedirectResponse("/login", status_code=303)
    return render(request, "home.html", {})


@router.get("/lang/{code}")
async def choose_language(request: Request, code: str, back: str = "/") -> Response:
    """Remember the chosen language and go back."""
    if code not in kernel_of(request).settings.web.locales:
        raise Problem(404, f"'{code}' 언어는 제공하지 않습니다.")
    response = RedirectResponse(safe_next(back), status_code=303)
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="lax")
    return response


@router.get("/geo/{layer}.geojson")
async def boundaries(request: Request, layer: str) -> Response:
    """Serve administrative boundaries from the data folder, for maps without tiles."""
    path = boundary_path(kernel_of(request).settings.data_dir, layer)
    if path is None:
        raise Problem(404, f"경계 데이터 '{layer}'가 없습니다 (CIVIC_DATA_DIR/geo).")
    return FileResponse(path, media_type="application/geo+json")
