"""RFC 9457 problem details for the API, readable error pages for people."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from civic.kernel.web.templating import render

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("civic.web")

# People read these; the API gets the same words in `title`.
KOREAN_TITLES = {
    400: "잘못된 요청입니다",
    401: "로그인이 필요합니다",
    403: "권한이 없습니다",
    404: "찾을 수 없습니다",
    405: "허용되지 않는 방법입니다",
    409: "이미 처리된 요청과 충돌합니다",
    413: "요청이 너무 큽니다",
    415: "지원하지 않는 형식입니다",
    422: "입력값을 확인해 주세요",
    429: "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요",
    500: "서버 오류가 발생했습니다",
    503: "서비스를 사용할 수 없습니다",
}


class ProblemDocument(BaseModel):
    """RFC 9457 problem details, as every error of the API is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring problem documents for these statuses."""
    return {
        status: {
            "description": KOREAN_TITLES.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_JSON: {"schema": ProblemDocument.model_json_schema()}},
        }
        for status in statuses
    }


# What any API route may answer besides success: input, identity, rights, absence, size.
API_PROBLEMS = problem_responses(400, 401, 403, 404, 405, 409, 413, 415, 422, 500)


class Problem(Exception):
    """An error that becomes a problem document (API) or an error page (browser)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        """Describe the problem; extensions become extra members of the document."""
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or KOREAN_TITLES.get(status) or HTTPStatus(status).phrase
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions


def wants_html(request: Request) -> bool:
    """Whether the error should be a page: not the API and the client accepts HTML."""
    if request.url.path.startswith("/api"):
        return False
    return "text/html" in request.headers.get("accept", "")


def problem_response(request: Request, problem: Problem) -> Response:
    """Render a problem for the client that asked."""
    request_id = getattr(request.state, "request_id", None)
    if wants_html(request) and problem.status == 401:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    if wants_html(request):
        return render(
            request,
            "error.html",
            {"problem": problem, "request_id": request_id},
            status_code=problem.status,
            headers=problem.headers,
        )
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extensions,
    }
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"location": list(err.get("loc", ())), "message": err.get("msg", ""), "type": err["type"]}
        for err in exc.errors()
    ]


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)  # noqa: S101 - registered for Problem only
    return problem_response(request, exc)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"'{request.url.path}' 경로가 없습니다 (no such path)."
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _documented_methods(request)):
        # Starlette names only the first matching route's methods; a path may have several.
        headers["Allow"] = ", ".join(allowed)
    return problem_response(request, Problem(exc.status_code, detail, headers=headers))


def _documented_methods(request: Request) -> list[str]:
    """Return every method the OpenAPI document gives the request's path."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = _validation_errors(exc)
    first = errors[0] if errors else {"location": [], "message": "invalid"}
    where = ".".join(str(p) for p in first["location"])
    problem = Problem(
        422,
        f"{where}: {first['message']}" if where else str(first["message"]),
        errors=errors,
    )
    return problem_response(request, problem)


async def _on_database(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)  # noqa: S101
    # SQLSTATE class 22 is a value the database refuses: a NUL character in text (PostgreSQL),
    # a string longer than its column. Such a value came from the request; anything else is ours.
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if not (isinstance(sqlstate, str) and sqlstate.startswith("22")):
        raise exc
    log.warning("refused_value", path=request.url.path, sqlstate=sqlstate, error=str(exc.orig))
    return problem_response(
        request,
        Problem(422, "데이터베이스가 받을 수 없는 값이 있습니다 (예: NUL 문자, 너무 긴 글)."),
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled_error", path=request.url.path)
    return problem_response(
        request,
        Problem(500, "예기치 않은 오류입니다. 요청 번호를 알려 주시면 찾아보겠습니다."),
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, a problem document or an error page."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(DBAPIError, _on_database)
    app.add_exception_handler(Exception, _on_unexpected)
