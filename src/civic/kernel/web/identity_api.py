"""JSON API of identity: who am I, the organisation's people, and API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from civic.kernel import audit
from civic.kernel.access import get_owned, scoped
from civic.kernel.identity import ALL_SERVICES, Principal, User, issue_api_token
from civic.kernel.web.deps import DbSession, SignedIn, audit_context, require
from civic.kernel.web.problems import Problem

router = APIRouter(prefix="/api/identity", tags=["identity"])
Admin = Annotated[Principal, Depends(require(ALL_SERVICES))]


class Grant(BaseModel):
    """One role in one service ('*' is every service)."""

    service: str
    role: str


class MeRead(BaseModel):
    """The principal behind this request."""

    user_id: str | None
    name: str
    organisation_id: str
    via: str
    grants: list[Grant]


class UserSummary(BaseModel):
    """A user without personal data."""

    id: str
    username: str
    display_name: str
    is_device: bool
    is_active: bool
    grants: list[Grant]


class UserRead(UserSummary):
    """A user with personal data; reading it is audited."""

    phone: str | None


class TokenCreate(BaseModel):
    """Ask for a bearer token for yourself."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120, description="What the token is for.")
    valid_days: int = Field(default=90, ge=1, le=3650, description="Days until it expires.")


class TokenCreated(BaseModel):
    """A new token: the secret is shown this once."""

    name: str
    token: str
    expires_in_days: int


def _summary(user: User) -> UserSummary:
    return UserSummary(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        is_device=user.is_device,
        is_active=user.is_active,
        grants=[Grant(service=g.service, role=g.role) for g in user.grants],
    )


@router.get("/me")
async def me(principal: SignedIn) -> MeRead:
    """Return who is asking and their roles."""
    return MeRead(
        user_id=principal.user_id,
        name=principal.name,
        organisation_id=principal.organisation_id,
        via=principal.via,
        grants=[Grant(service=s, role=r) for s, r in sorted(principal.grants)],
    )


@router.get("/users")
async def list_users(session: DbSession, principal: Admin) -> list[UserSummary]:
    """List the people and devices of the caller's organisation."""
    stmt = scoped(select(User).order_by(User.username), User.organisation_id, principal)
    return [_summary(user) for user in (await session.scalars(stmt)).all()]


@router.get("/users/{user_id}")
async def read_user(
    request: Request, session: DbSession, principal: Admin, user_id: str
) -> UserRead:
    """Return one user of the organisation with personal data, and audit the read."""
    user = await get_owned(session, User, user_id, principal=principal)
    if user is None:
        raise Problem(404, f"사용자 '{user_id}'를 찾을 수 없습니다.")
    await audit.record_personal_read(
        session,
        principal=principal,
        subject_type="user",
        subject_id=user.id,
        fields=["phone"],
        context=audit_context(request),
    )
    return UserRead(**_summary(user).model_dump(), phone=user.phone)


@router.post("/tokens", status_code=201)
async def create_token(
    request: Request, session: DbSession, principal: SignedIn, body: TokenCreate
) -> TokenCreated:
    """Create a bearer token for the caller."""
    user = await session.get(User, principal.user_id) if principal.user_id else None
    if user is None:
        raise Problem(403, "사람 계정만 토큰을 만들 수 있습니다.")
    token = await issue_api_token(
        session, user=user, name=body.name, valid_for=timedelta(days=body.valid_days)
    )
    await audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CREATE,
        subject_type="api_token",
        subject_id=None,
        detail={"name": body.name, "valid_days": body.valid_days},
        context=audit_context(request),
    )
    return TokenCreated(name=body.name, token=token, expires_in_days=body.valid_days)
