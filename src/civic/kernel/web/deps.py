"""Request dependencies: the transaction, who is asking, and the one RBAC check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.audit import AuditContext
from civic.kernel.db import transaction
from civic.kernel.identity import Principal, Role, principal_from_api_token
from civic.kernel.runtime import Kernel
from civic.kernel.sessions import principal_from_browser_session
from civic.kernel.web.csrf import UNSAFE_METHODS, csrf_valid
from civic.kernel.web.problems import Problem

SESSION_COOKIE = "civic_session"


def kernel_of(request: Request) -> Kernel:
    """Return the running kernel."""
    kernel: Kernel = request.app.state.kernel
    return kernel


async def _db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with transaction(kernel_of(request).sessions) as session:
        yield session


# scope="function" commits before the response leaves, so a failed commit is the client's error.
DbSession = Annotated[AsyncSession, Depends(_db_session, scope="function")]


def audit_context(request: Request) -> AuditContext:
    """Return the request id and client address for the audit log."""
    return AuditContext(
        request_id=getattr(request.state, "request_id", None),
        ip=request.client.host if request.client else None,
    )


async def _optional_principal(request: Request, session: DbSession) -> Principal | None:
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal: Principal | None = None
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if authorization:
        if scheme.lower() != "bearer" or not token:
            raise Problem(
                401,
                "Authorization 헤더는 'Bearer <토큰>' 형식이어야 합니다.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await principal_from_api_token(session, token=token.strip())
        if principal is None:
            raise Problem(
                401, "토큰이 없거나 만료되었습니다.", headers={"WWW-Authenticate": "Bearer"}
            )
    elif cookie := request.cookies.get(SESSION_COOKIE):
        principal = await principal_from_browser_session(session, secret=cookie)
        # A browser's session cookie rides along on forged requests too; demand the token.
        if principal is not None and request.method in UNSAFE_METHODS:
            if not await csrf_valid(request):
                raise Problem(403, "보안 토큰(CSRF)이 맞지 않습니다. 페이지를 새로 고쳐 주세요.")
    request.state.principal = principal
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(_optional_principal)]


def require(service: str, *roles: Role) -> Callable[..., Awaitable[Principal]]:
    """Return a dependency that admits a principal holding one of roles in service (or admin)."""

    async def check(principal: OptionalPrincipal) -> Principal:
        if principal is None or principal.via == "link":
            raise Problem(401, "로그인이 필요합니다.", headers={"WWW-Authenticate": "Bearer"})
        if not principal.has_role(service, *roles):
            wanted = ", ".join(r.value for r in roles) or Role.ADMIN.value
            raise Problem(403, f"'{service}'에서 다음 역할이 필요합니다: {wanted}.")
        return principal

    return check


async def signed_in(principal: OptionalPrincipal) -> Principal:
    """Admit any signed-in person or token."""
    if principal is None or principal.via == "link":
        raise Problem(401, "로그인이 필요합니다.", headers={"WWW-Authenticate": "Bearer"})
    return principal


async def csrf_protected(request: Request) -> None:
    """Refuse an unsafe form post that lacks this browser's CSRF token."""
    if request.method in UNSAFE_METHODS and not await csrf_valid(request):
        raise Problem(403, "보안 토큰(CSRF)이 맞지 않습니다. 페이지를 새로 고쳐 주세요.")


SignedIn = Annotated[Principal, Depends(signed_in)]
