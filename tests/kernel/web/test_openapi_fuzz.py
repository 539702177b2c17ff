"""Fuzz every operation of the OpenAPI: no input may break the API or go without a problem."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.python import asgi

from civic.app import create_app
from civic.settings import Settings
from tests.conftest import TEST_SECRET

# The document is the same whatever the database; this app never starts, it only describes.
SPEC = create_app(
    Settings(
        env="test", database={"url": "sqlite+aiosqlite://"}, security={"secret_key": TEST_SECRET}
    ),
    services=[],
).openapi()
schema = schemathesis.openapi.from_dict(SPEC)
# PostgreSQL text cannot hold NUL: such a schema-valid value is refused there with a 422 problem
# and stored by SQLite. test_problems pins both answers; here it would only make the legs differ.
schema.config.generation.update(allow_x00=False)
# An upload's real type and size are judged on its bytes, which no schema can describe: a
# schema-valid body may still be refused with 413 or 415, and that is the right answer.
_acceptance = schema.config.checks.positive_data_acceptance
_acceptance.expected_statuses = [*_acceptance.expected_statuses, "413", "415"]
PROBLEM_MEMBERS = {"type": str, "title": str, "status": int, "detail": str, "instance": str}


def problem_document(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Every 4xx answer is an RFC 9457 problem document naming its request."""
    if not 400 <= response.status_code < 500:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/problem+json"), content_type
    body = response.json()
    for member, kind in PROBLEM_MEMBERS.items():
        assert isinstance(body.get(member), kind), f"{member} missing or not {kind.__name__}"
    assert body["status"] == response.status_code
    assert body["request_id"] == response.headers["x-request-id"][0]


@pytest.fixture
def fuzzed(settings: Settings) -> Iterator[FastAPI]:
    """A platform on the test database, started by schemathesis on its own event loop."""
    # Its engine lives and dies on schemathesis's loop; the `app` fixture keeps its own.
    application = create_app(settings, services=[])
    try:
        yield application
    finally:
        asgi.shutdown_lifespans()


@schema.parametrize()
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_breaks_the_api(
    case: schemathesis.Case, fuzzed: FastAPI, admin_token: str
) -> None:
    case.call_and_validate(
        app=fuzzed,
        headers={"Authorization": f"Bearer {admin_token}"},
        additional_checks=[problem_document],
    )
