"""JSON API of the shared incident under /api/incidents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.identity import Principal
from civic.kernel.incidents import service
from civic.kernel.incidents.models import IncidentStatus, IncidentType
from civic.kernel.incidents.schemas import (
    IncidentCreate,
    IncidentList,
    IncidentPatch,
    IncidentRead,
    IncidentSummary,
    MediaLink,
    NoteCreate,
    NoteRead,
    ReporterContact,
    StatusChange,
    StatusLink,
    UnitLink,
)
from civic.kernel.incidents.service import (
    READERS,
    SERVICE,
    WRITERS,
    IncidentError,
    IncidentInput,
)
from civic.kernel.web.deps import DbSession, audit_context, kernel_of, require
from civic.kernel.web.problems import Problem

router = APIRouter(prefix="/api/incidents", tags=["incidents"])
Reader = Annotated[Principal, Depends(require(SERVICE, *READERS))]
Writer = Annotated[Principal, Depends(require(SERVICE, *WRITERS))]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="A key the client makes per incident; a retry with it returns the same one.",
    ),
]


async def _problems(session: DbSession) -> AsyncIterator[AsyncSession]:
    try:
        yield session
    except IncidentError as exc:
        raise Problem(exc.status, exc.detail) from exc


# Every route maps the service's IncidentError to a problem document the same way.
Db = Annotated[AsyncSession, Depends(_problems, scope="function")]


@router.post("", status_code=201)
async def create(
    request: Request,
    response: Response,
    session: Db,
    principal: Writer,
    body: IncidentCreate,
    idempotency_key: IdempotencyKey,
) -> IncidentRead:
    """Receive an incident; the same Idempotency-Key returns the incident it created."""
    incident, created = await service.create_incident(
        session,
        principal=principal,
        given=IncidentInput(
            **body.model_dump(exclude={"location"}),
            latitude=body.location.latitude if body.location else None,
            longitude=body.location.longitude if body.location else None,
        ),
        idempotency_key=idempotency_key,
        context=audit_context(request),
    )
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/api/incidents/{incident.id}"
    return IncidentRead.of(incident)


@router.get("")
async def list_(
    session: Db,
    principal: Reader,
    status: Annotated[list[IncidentStatus] | None, Query()] = None,
    type: IncidentType | None = None,
    open: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> IncidentList:
    """List the organisation's incidents, newest first, by status, type and openness."""
    rows, total = await service.list_incidents(
        session,
        principal=principal,
        statuses=status,
        type=type,
        open_only=open,
        limit=limit,
        offset=offset,
    )
    return IncidentList(items=[IncidentSummary.model_validate(r) for r in rows], total=total)


@router.get("/{incident_id}")
async def read(session: Db, principal: Reader, incident_id: str) -> IncidentRead:
    """Read one incident with its timeline, units, notes and media."""
    incident = await service.get_incident(session, principal=principal, incident_id=incident_id)
    return IncidentRead.of(incident)


@router.get("/{incident_id}/reporter")
async def reporter(
    request: Request, session: Db, principal: Reader, incident_id: str
) -> ReporterContact:
    """Read the reporter's contact: dispatchers and operators only, and the read is audited."""
    name, phone = await service.read_reporter(
        session, principal=principal, incident_id=incident_id, context=audit_context(request)
    )
    return ReporterContact(name=name, phone=phone)


@router.patch("/{incident_id}")
async def correct(
    request: Request, session: Db, principal: Writer, incident_id: str, body: IncidentPatch
) -> IncidentRead:
    """Correct the type, place or description of an open incident."""
    incident = await service.update_details(
        session,
        principal=principal,
        incident_id=incident_id,
        changes=body.changes(),
        context=audit_context(request),
    )
    return IncidentRead.of(incident)


@router.post("/{incident_id}/status")
async def change_status(
    request: Request, session: Db, principal: Reader, incident_id: str, body: StatusChange
) -> IncidentRead:
    """Move an incident forward; crews report on scene and resolved too."""
    incident = await service.change_status(
        session,
        principal=principal,
        incident_id=incident_id,
        status=body.status,
        note=body.note,
        context=audit_context(request),
    )
    return IncidentRead.of(incident)


@router.post("/{incident_id}/notes", status_code=201)
async def add_note(
    request: Request, session: Db, principal: Reader, incident_id: str, body: NoteCreate
) -> NoteRead:
    """Add a note."""
    note = await service.add_note(
        session,
        principal=principal,
        incident_id=incident_id,
        text=body.text,
        context=audit_context(request),
    )
    return NoteRead.model_validate(note)


@router.post("/{incident_id}/units")
async def link_unit(
    request: Request, session: Db, principal: Writer, incident_id: str, body: UnitLink
) -> IncidentRead:
    """Send a unit, or update its status on the incident."""
    incident = await service.link_unit(
        session,
        principal=principal,
        incident_id=incident_id,
        unit_id=body.unit_id,
        name=body.name,
        status=body.status,
        context=audit_context(request),
    )
    return IncidentRead.of(incident)


@router.post("/{incident_id}/media")
async def attach_media(
    request: Request, session: Db, principal: Reader, incident_id: str, body: MediaLink
) -> IncidentRead:
    """Link a photo, video or recording of the media module."""
    incident = await service.attach_media(
        session,
        principal=principal,
        incident_id=incident_id,
        media_id=body.media_id,
        caption=body.caption,
        context=audit_context(request),
    )
    return IncidentRead.of(incident)


@router.post("/{incident_id}/status-link", status_code=201)
async def status_link(
    request: Request, session: Db, principal: Writer, incident_id: str
) -> StatusLink:
    """Make a link the reporter can open to follow this incident's status."""
    kernel = kernel_of(request)
    hours = kernel.settings.security.citizen_link_hours
    token = await service.issue_status_link(
        session,
        principal=principal,
        incident_id=incident_id,
        secret=kernel.secret,
        valid_for=timedelta(hours=hours),
    )
    base = kernel.settings.web.base_url.rstrip("/")
    return StatusLink(
        token=token, url=f"{base}/incidents/status?link={token}", expires_in_hours=hours
    )
