from datetime import timedelta

from fastapi import FastAPI

from civic.kernel.db import transaction
from civic.kernel.identity import (
    Principal,
    Role,
    User,
    authenticate,
    hash_password,
    issue_api_token,
    principal_from_api_token,
    revoke_api_token,
    verify_password,
)
from tests.factories import PASSWORD, make_organisation, make_user


def test_passwords_are_argon2_and_verified() -> None:
    stored = hash_password("비밀번호123")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "비밀번호123")
    assert not verify_password(stored, "비밀번호124")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_roles_are_per_service_and_admin_covers_a_service() -> None:
    clerk = Principal(
        user_id="u", name="c", organisation_id="o", grants=frozenset({("formhelper", "clerk")})
    )
    assert clerk.has_role("formhelper", Role.CLERK)
    assert not clerk.has_role("formhelper", Role.OFFICER)
    assert not clerk.has_role("smart119", Role.CLERK)
    admin = Principal(
        user_id="u", name="a", organisation_id="o", grants=frozenset({("*", "admin")})
    )
    assert admin.has_role("smart119", Role.DISPATCHER)
    service_admin = Principal(
        user_id="u", name="s", organisation_id="o", grants=frozenset({("hydrants", "admin")})
    )
    assert service_admin.has_role("hydrants", Role.CREW)
    assert not service_admin.has_role("schoolzone", Role.OFFICER)


async def test_authenticate_refuses_wrong_passwords_and_devices(app: FastAPI) -> None:
    org = await make_organisation(app)
    person = await make_user(app, organisation=org, roles={"smart119": [Role.CREW]})
    device = await make_user(
        app, organisation=org, roles={"hydrants": [Role.OPERATOR]}, is_device=True
    )
    async with transaction(app.state.kernel.sessions) as session:
        assert (
            await authenticate(session, username=person.username, password=PASSWORD)
        ).id == person.id
        assert await authenticate(session, username=person.username, password="wrong") is None
        assert await authenticate(session, username="nobody-here", password=PASSWORD) is None
        assert await authenticate(session, username=device.username, password=PASSWORD) is None


async def test_api_tokens_expire_and_can_be_revoked(app: FastAPI) -> None:
    org = await make_organisation(app)
    user = await make_user(app, organisation=org, roles={"hydrants": [Role.CREW]})
    sessions = app.state.kernel.sessions
    async with transaction(sessions) as session:
        owner = await session.get(User, user.id)
        live = await issue_api_token(
            session, user=owner, name="truck 3", valid_for=timedelta(days=1)
        )
        stale = await issue_api_token(
            session, user=owner, name="old", valid_for=timedelta(seconds=-1)
        )
    async with transaction(sessions) as session:
        principal = await principal_from_api_token(session, token=live)
        assert principal is not None and principal.via == "token"
        assert principal.has_role("hydrants", Role.CREW)
        assert await principal_from_api_token(session, token=stale) is None
        assert await principal_from_api_token(session, token=live + "x") is None
    async with transaction(sessions) as session:
        from sqlalchemy import select

        from civic.kernel.identity import ApiToken, token_digest

        row = await session.scalar(
            select(ApiToken).where(ApiToken.token_hash == token_digest(live))
        )
        assert row.token_hash != live  # only the digest is stored
        await revoke_api_token(session, token_id=row.id)
    async with transaction(sessions) as session:
        assert await principal_from_api_token(session, token=live) is None
