"""Bad input gets a 4xx RFC 9457 problem document (or, for a person, an error page), never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from civic.app import create_app
from civic.settings import Settings
from tests.conftest import DB_KIND

TOKENS = "/api/identity/tokens"
SMALL_LIMIT = 2048


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check that response is a problem document with status, and return its members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for member, kind in {"type": str, "title": str, "detail": str, "instance": str}.items():
        assert isinstance(body.get(member), kind), f"{member}: {body.get(member)!r}"
        assert body[member], f"{member} is empty"
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- bodies --------------------------------------------------------------------------------------


async def test_malformed_json_body(client: httpx.AsyncClient, admin_token: str) -> None:
    response = await client.post(
        TOKENS,
        content=b'{"name": "scanner",',
        headers={**bearer(admin_token), "content-type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("payload", "location", "error"),
    [
        ({"name": 5, "valid_days": 30}, ["body", "name"], "string_type"),
        ({"name": "scanner", "valid_days": "many"}, ["body", "valid_days"], "int_parsing"),
        ({"name": "scanner", "valid_days": 0}, ["body", "valid_days"], "greater_than_equal"),
        ({"name": ["scanner"]}, ["body", "name"], "string_type"),
        ({}, ["body", "name"], "missing"),
        ({"valid_days": 30}, ["body", "name"], "missing"),
        ({"name": "scanner", "admin": True}, ["body", "admin"], "extra_forbidden"),
        (None, ["body"], "missing"),
        (["scanner"], ["body"], "model_attributes_type"),
    ],
    ids=[
        "name-not-string",
        "days-not-integer",
        "days-out-of-range",
        "name-is-list",
        "empty-object",
        "missing-name",
        "extra-field",
        "null",
        "array",
    ],
)
async def test_invalid_token_request(
    client: httpx.AsyncClient, admin_token: str, payload: Any, location: list[str], error: str
) -> None:
    response = await client.post(TOKENS, json=payload, headers=bearer(admin_token))
    body = assert_problem(response, 422)
    assert {"location": location, "type": error} in [
        {"location": e["location"], "type": e["type"]} for e in body["errors"]
    ]
    assert body["detail"].startswith(".".join(location))


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000, b'{"name": "\xff\xfe"}'],
    ids=["nested-too-deep", "not-utf8"],
)
async def test_unparsable_body(client: httpx.AsyncClient, admin_token: str, content: bytes) -> None:
    response = await client.post(
        TOKENS, content=content, headers={**bearer(admin_token), "content-type": "application/json"}
    )
    assert_problem(response, 400)


async def test_body_not_json(client: httpx.AsyncClient, admin_token: str) -> None:
    response = await client.post(
        TOKENS,
        content=b"name=scanner",
        headers={**bearer(admin_token), "content-type": "text/plain"},
    )
    assert_problem(response, 422)


# --- oversized bodies ----------------------------------------------------------------------------


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a platform that takes bodies of 2 KiB at most."""
    web = settings.web.model_copy(update={"max_body_bytes": SMALL_LIMIT})
    application = create_app(settings.model_copy(update={"web": web}), services=[])
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def token_request(size: int) -> bytes:
    """A valid token request padded with spaces to size bytes."""
    body = b'{"name": "scanner", "valid_days": 7}'
    return body + b" " * (size - len(body))


async def chunks(body: bytes, size: int = 512) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_declared_length_over_the_limit(
    small_client: httpx.AsyncClient, admin_token: str
) -> None:
    response = await small_client.post(
        TOKENS,
        content=token_request(SMALL_LIMIT + 1),
        headers={**bearer(admin_token), "content-type": "application/json"},
    )
    assert response.request.headers["content-length"] == str(SMALL_LIMIT + 1)
    body = assert_problem(response, 413)
    assert str(SMALL_LIMIT) in body["detail"]


async def test_streamed_body_over_the_limit(
    small_client: httpx.AsyncClient, admin_token: str
) -> None:
    response = await small_client.post(
        TOKENS,
        content=chunks(token_request(4 * SMALL_LIMIT)),
        headers={**bearer(admin_token), "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413)


async def test_streamed_body_within_the_limit_arrives_whole(
    small_client: httpx.AsyncClient, admin_token: str
) -> None:
    response = await small_client.post(
        TOKENS,
        content=chunks(token_request(SMALL_LIMIT), size=100),
        headers={**bearer(admin_token), "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "scanner"


async def test_default_limit_is_ten_mebibytes(client: httpx.AsyncClient, admin_token: str) -> None:
    response = await client.post(
        TOKENS,
        content=token_request(10 * 1024 * 1024 + 1),
        headers={**bearer(admin_token), "content-type": "application/json"},
    )
    assert "10485760" in assert_problem(response, 413)["detail"]


# --- routes and methods --------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["application/json", "text/html", "*/*"])
async def test_unknown_api_route(client: httpx.AsyncClient, accept: str) -> None:
    response = await client.get("/api/no-such-thing", headers={"accept": accept})
    body = assert_problem(response, 404)
    assert "/api/no-such-thing" in body["detail"]


async def test_unknown_page_for_a_person(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/no-such-page", headers={"accept": "text/html,application/xhtml+xml;q=0.9"}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert '<html lang="ko">' in page
    assert "찾을 수 없습니다" in page
    assert "오류 코드" in page
    assert response.headers["x-request-id"] in page


async def test_unknown_page_for_a_program(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/no-such-page"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/identity/me"), ("PUT", TOKENS), ("POST", "/healthz")],
)
async def test_wrong_method(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"]


# --- who is asking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    ["Token abc", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer nope", "Bearer a\x00b"],
    ids=["other-scheme", "no-token", "empty-token", "basic", "unknown", "nul"],
)
async def test_bad_bearer_header(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/api/identity/me", headers={"authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_bearer_header_not_ascii(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/identity/me", headers={"authorization": b"Bearer \xff\xfe"})
    assert_problem(response, 401)


async def test_neither_cookie_nor_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/identity/me")
    body = assert_problem(response, 401)
    assert body["title"] == "로그인이 필요합니다"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_session_cookie(client: httpx.AsyncClient) -> None:
    client.cookies.set("civic_session", "forged")
    assert_problem(await client.get("/api/identity/me"), 401)


async def test_request_id_given_by_the_caller(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/identity/me", headers={"x-request-id": "trace-0123456789"})
    assert assert_problem(response, 401)["request_id"] == "trace-0123456789"


# --- values the database refuses -----------------------------------------------------------------


async def test_nul_in_a_path_parameter(client: httpx.AsyncClient, admin_token: str) -> None:
    # PostgreSQL refuses NUL in text; SQLite looks for it and finds nobody.
    response = await client.get("/api/identity/users/a%00b", headers=bearer(admin_token))
    assert_problem(response, 422 if DB_KIND == "postgres" else 404)


async def test_nul_in_a_body(client: httpx.AsyncClient, admin_token: str) -> None:
    response = await client.post(TOKENS, json={"name": "scan\x00ner"}, headers=bearer(admin_token))
    if DB_KIND == "postgres":
        assert_problem(response, 422)
    else:
        assert response.status_code == 201


async def test_audit_time_out_of_range(client: httpx.AsyncClient, admin_token: str) -> None:
    # The last moment of year 9999 at UTC-14 has no UTC time.
    response = await client.get(
        "/admin/audit", params={"since": "9999-12-31T23:59:59-14:00"}, headers=bearer(admin_token)
    )
    assert "시작" in assert_problem(response, 422)["detail"]
