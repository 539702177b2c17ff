"""Pages: the live incident board, an incident's detail, and the citizen's status page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from civic.kernel.citizen_links import CitizenLinkError
from civic.kernel.identity import Principal
from civic.kernel.incidents import service
from civic.kernel.incidents.models import Incident, IncidentStatus, IncidentType, UnitStatus
from civic.kernel.incidents.schemas import IncidentSummary
from civic.kernel.incidents.service import READERS, SERVICE, WRITERS, IncidentError
from civic.kernel.realtime.endpoint import principal_from_link
from civic.kernel.web.deps import DbSession, kernel_of, require
from civic.kernel.web.i18n import gettext as _
from civic.kernel.web.problems import Problem
from civic.kernel.web.templating import render

router = APIRouter(prefix="/incidents", include_in_schema=False)
Reader = Annotated[Principal, Depends(require(SERVICE, *READERS))]
BOARD_SIZE = 200


def labels() -> dict[str, dict[str, str]]:
    """Korean-first names of types and statuses, in the request's language."""
    return {
        "type": {
            IncidentType.FIRE: _("화재"),
            IncidentType.RESCUE: _("구조"),
            IncidentType.EMS: _("구급"),
            IncidentType.OTHER: _("기타"),
        },
        "status": {
            IncidentStatus.RECEIVED: _("접수"),
            IncidentStatus.DISPATCHED: _("출동"),
            IncidentStatus.ON_SCENE: _("현장 도착"),
            IncidentStatus.RESOLVED: _("처리 완료"),
            IncidentStatus.CLOSED: _("종결"),
        },
        "unit": {
            UnitStatus.ASSIGNED: _("배정"),
            UnitStatus.EN_ROUTE: _("이동 중"),
            UnitStatus.ON_SCENE: _("현장"),
            UnitStatus.RELEASED: _("복귀"),
        },
    }


def _summary(incident: Incident) -> dict[str, Any]:
    return IncidentSummary.model_validate(incident).model_dump(mode="json")


@router.get("/")
async def board(request: Request, session: DbSession, principal: Reader) -> Response:
    """Show open incidents in a list and on the map, kept current over the live socket."""
    rows, total = await service.list_incidents(
        session, principal=principal, open_only=True, limit=BOARD_SIZE
    )
    context = {
        "incidents": rows,
        "summaries": [_summary(r) for r in rows],
        "total": total,
        "labels": labels(),
        "can_write": principal.has_role(SERVICE, *WRITERS),
        "types": list(IncidentType),
    }
    return render(request, "incidents/board.html", context)


@router.get("/status")
async def citizen_status(
    request: Request, session: DbSession, link: Annotated[str, Query(max_length=500)]
) -> Response:
    """Show a citizen the status of the one incident their link opens, kept current."""
    try:
        principal = await principal_from_link(session, secret=kernel_of(request).secret, token=link)
    except CitizenLinkError as exc:
        raise Problem(403, str(exc)) from exc
    scope = principal.link
    if scope is None or scope.purpose != service.STATUS_LINK_PURPOSE:
        raise Problem(403, "이 링크로는 사건 상태를 볼 수 없습니다 (not a status link).")
    incident = await session.get(Incident, scope.subject_id)
    if incident is None or incident.organisation_id != principal.organisation_id:
        raise Problem(404, "사건을 찾을 수 없습니다.")
    context = {"incident": incident, "labels": labels(), "link": link}
    return render(request, "incidents/status.html", context)


@router.get("/{incident_id}")
async def detail(
    request: Request, session: DbSession, principal: Reader, incident_id: str
) -> Response:
    """Show one incident with its timeline, units, notes and media."""
    try:
        incident = await service.get_incident(session, principal=principal, incident_id=incident_id)
    except IncidentError as exc:
        raise Problem(exc.status, exc.detail) from exc
    current = list(IncidentStatus).index(IncidentStatus(incident.status))
    context = {
        "incident": incident,
        "labels": labels(),
        "next_statuses": list(IncidentStatus)[current + 1 :],
        "can_write": principal.has_role(SERVICE, *WRITERS),
        "can_read_reporter": principal.has_role(SERVICE, *service.REPORTER_READERS),
    }
    return render(request, "incidents/detail.html", context)
