import httpx
from fastapi import FastAPI
from sqlalchemy import select

from civic.kernel.audit import AuditEntry
from civic.kernel.db import transaction
from civic.kernel.identity import Role
from civic.kernel.web.deps import SESSION_COOKIE
from tests.conftest import csrf_from, login
from tests.factories import PASSWORD, make_organisation, make_user


async def test_home_sends_strangers_to_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_login_starts_a_session_and_logout_ends_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    user = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    response = await login(client, user.username, PASSWORD)
    assert response.status_code == 303
    cookie = response.cookies[SESSION_COOKIE]
    assert "httponly" in response.headers["set-cookie"].lower()
    home = await client.get("/", headers={"accept": "text/html"})
    assert home.status_code == 200
    assert 'class="civic-map"' in home.text
    assert (await client.get("/api/identity/me")).json()["name"] == user.username

    token = await csrf_from(client, "/")
    out = await client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    client.cookies.set(SESSION_COOKIE, cookie)  # a stolen copy of the cookie is dead too
    assert (await client.get("/api/identity/me")).status_code == 401


async def test_wrong_password_is_refused_and_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    user = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    response = await login(client, user.username, "wrong password")
    assert response.status_code == 401
    assert "아이디 또는 비밀번호가 맞지 않습니다." in response.text
    assert SESSION_COOKIE not in response.cookies
    async with transaction(app.state.kernel.sessions) as session:
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.subject_id == user.id, AuditEntry.action == "login_failed"
            )
        )
    assert entry is not None and entry.organisation_id == org.id


async def test_login_is_locked_after_repeated_failures(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    user = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    limit = app.state.kernel.settings.security.login_max_failures
    for _ in range(limit):
        assert (await login(client, user.username, "guess")).status_code == 401
    locked = await login(client, user.username, PASSWORD)  # even the right password waits
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers
    assert "로그인 시도가 너무 많습니다" in locked.text


async def test_login_form_without_csrf_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    user = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    await client.get("/login")
    forged = await client.post(
        "/login", data={"username": user.username, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert SESSION_COOKIE not in forged.cookies


async def test_cookie_sessions_need_the_csrf_header_for_api_writes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    user = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    await login(client, user.username, PASSWORD)
    body = {"name": "laptop", "valid_days": 7}
    assert (await client.post("/api/identity/tokens", json=body)).status_code == 403
    token = await csrf_from(client, "/")
    made = await client.post("/api/identity/tokens", json=body, headers={"x-csrf-token": token})
    assert made.status_code == 201
    secret = made.json()["token"]
    # A bearer token is not a browser: it needs no CSRF token.
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    async with bare:
        me = await bare.get("/api/identity/me", headers={"authorization": f"Bearer {secret}"})
        assert me.json()["via"] == "token"
        again = await bare.post(
            "/api/identity/tokens", json=body, headers={"authorization": f"Bearer {secret}"}
        )
        assert again.status_code == 201


async def test_next_after_login_stays_on_this_site(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_organisation(app)
    user = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    token = await csrf_from(client)
    response = await client.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
    )
    assert response.headers["location"] == "/"
