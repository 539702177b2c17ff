"""Administration of the event bus: dead letters to inspect and replay, and the outbox backlog."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import or_, select

from civic.kernel.bus import DeadLetter
from civic.kernel.db import utcnow
from civic.kernel.identity import ALL_SERVICES, Principal
from civic.kernel.relay import ReplayError, outbox_backlog, relay_of
from civic.kernel.web.deps import DbSession, kernel_of, require
from civic.kernel.web.problems import Problem
from civic.kernel.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)
Admin = Annotated[Principal, Depends(require(ALL_SERVICES))]
PAGE_SIZE = 50


@router.get("/events")
async def dead_letters_page(
    request: Request,
    session: DbSession,
    principal: Admin,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    replayed: Annotated[int | None, Query(ge=1)] = None,
    ok: Annotated[bool | None, Query()] = None,
) -> Response:
    """List the dead letters of the admin's organisation (and unowned ones), with the backlog."""
    letters = (
        await session.scalars(
            select(DeadLetter)
            # Events without an owner are the platform's own; an agency sees only its events.
            .where(
                or_(
                    DeadLetter.organisation_id == principal.organisation_id,
                    DeadLetter.organisation_id.is_(None),
                )
            )
            .order_by(DeadLetter.id.desc())
            .limit(PAGE_SIZE + 1)
            .offset((page - 1) * PAGE_SIZE)
        )
    ).all()
    backlog = await outbox_backlog(session)
    oldest_age = (utcnow() - backlog.oldest_at).total_seconds() if backlog.oldest_at else None
    context = {
        "letters": letters[:PAGE_SIZE],
        "has_more": len(letters) > PAGE_SIZE,
        "page": page,
        "backlog": backlog.count,
        "oldest_age": _age(oldest_age),
        "replayed": replayed,
        "replay_ok": ok,
    }
    return render(request, "admin/events.html", context)


@router.post("/events/{letter_id}/replay")
async def replay_dead_letter(
    request: Request,
    session: DbSession,
    principal: Admin,
    letter_id: Annotated[int, Path(ge=1)],
) -> Response:
    """Deliver a dead letter again to its subscriber, then show the list."""
    # The replay runs in transactions of its own; this request's session only read.
    relay = relay_of(kernel_of(request))
    try:
        handled = await relay.replay(letter_id, organisation_id=principal.organisation_id)
    except LookupError as exc:
        raise Problem(404, f"실패한 이벤트 {letter_id}번이 없습니다.") from exc
    except ReplayError as exc:
        raise Problem(409, str(exc)) from exc
    flag = "true" if handled else "false"
    return RedirectResponse(f"/admin/events?replayed={letter_id}&ok={flag}", status_code=303)


def _age(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}min"
    return f"{seconds // 3600}h"
