"""Fixtures of the web tests: a bearer token for an administrator."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from civic.kernel.db import transaction
from civic.kernel.identity import Role, User, issue_api_token
from tests.factories import make_organisation, make_user


@pytest.fixture
async def admin_token(app: FastAPI) -> str:
    """A bearer token of an administrator of every service, in the app's database."""
    organisation = await make_organisation(app)
    user = await make_user(app, organisation=organisation, roles={"*": [Role.ADMIN]})
    async with transaction(app.state.kernel.sessions) as session:
        loaded = await session.get(User, user.id)
        assert loaded is not None
        return await issue_api_token(session, user=loaded, name="web tests")
