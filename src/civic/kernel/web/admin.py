"""Administration pages of an organisation: the audit log search."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from civic.kernel import audit
from civic.kernel.identity import ALL_SERVICES, Principal
from civic.kernel.web.deps import DbSession, require
from civic.kernel.web.problems import Problem
from civic.kernel.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)
Admin = Annotated[Principal, Depends(require(ALL_SERVICES))]
PAGE_SIZE = 50


def _parse_time(value: str | None, label: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Problem(
            422, f"{label} 시각 형식이 맞지 않습니다: {value!r} (예: 2026-11-25T09:00)"
        ) from exc
    # A time typed into the page is Korean local time unless it says otherwise.
    if parsed.tzinfo is None:
        from zoneinfo import ZoneInfo

        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Seoul"))
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59-14:00 has no UTC time
        raise Problem(422, f"{label} 시각이 범위를 벗어납니다: {value!r}") from exc


@router.get("/audit")
async def audit_search(
    request: Request,
    session: DbSession,
    principal: Admin,
    actor: Annotated[str | None, Query(max_length=120)] = None,
    subject: Annotated[str | None, Query(max_length=130)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """Search the organisation's audit log by person, subject and time."""
    entries = await audit.search(
        session,
        organisation_id=principal.organisation_id,
        actor=actor or None,
        subject=subject or None,
        since=_parse_time(since, "시작"),
        until=_parse_time(until, "끝"),
        limit=PAGE_SIZE + 1,
        offset=(page - 1) * PAGE_SIZE,
    )
    context = {
        "entries": entries[:PAGE_SIZE],
        "has_more": len(entries) > PAGE_SIZE,
        "page": page,
        "query": {
            "actor": actor or "",
            "subject": subject or "",
            "since": since or "",
            "until": until or "",
        },
    }
    # htmx asks for the table alone when the search form changes.
    template = "admin/audit_rows.html" if request.headers.get("hx-request") else "admin/audit.html"
    return render(request, template, context)
