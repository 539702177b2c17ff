"""Factories for organisations and users in a running test app."""

from __future__ import annotations

import uuid

from fastapi import FastAPI

from civic.kernel.db import transaction
from civic.kernel.identity import (
    Organisation,
    OrganisationKind,
    Role,
    User,
    create_organisation,
    create_user,
)

PASSWORD = "correct horse battery staple"


def unique(prefix: str) -> str:
    """Return a name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def make_organisation(
    app: FastAPI,
    *,
    kind: OrganisationKind = OrganisationKind.DISTRICT_OFFICE,
    name: str = "양천구청",
) -> Organisation:
    """Create an organisation."""
    async with transaction(app.state.kernel.sessions) as session:
        return await create_organisation(session, code=unique("org"), name=name, kind=kind)


async def make_user(
    app: FastAPI,
    *,
    organisation: Organisation,
    roles: dict[str, list[Role]],
    username: str | None = None,
    password: str | None = PASSWORD,
    phone: str | None = "010-1234-5678",
    is_device: bool = False,
) -> User:
    """Create a user with roles per service."""
    async with transaction(app.state.kernel.sessions) as session:
        return await create_user(
            session,
            organisation=organisation,
            username=username or unique("user"),
            display_name="홍길동",
            password=password,
            roles=roles,
            phone=phone,
            is_device=is_device,
        )
