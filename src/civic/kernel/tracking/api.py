"""JSON API of tracking: devices post positions; dispatchers ask who is where."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime

from civic.kernel.db import utcnow
from civic.kernel.geo.points import Point
from civic.kernel.identity import Principal, Role
from civic.kernel.tracking import access
from civic.kernel.tracking.models import TrackedKind
from civic.kernel.tracking.part import SERVICE, WATCH_ROLES, Tracker, tracker_of
from civic.kernel.tracking.schemas import (
    SUBJECT_ID_PATTERN,
    HistoryRead,
    IngestResult,
    NearbyRead,
    PositionBatch,
    SubjectRead,
    TrackingStats,
)
from civic.kernel.web.deps import DbSession, audit_context, kernel_of, require
from civic.kernel.web.problems import Problem

router = APIRouter(prefix="/api/tracking", tags=["tracking"])
log = structlog.get_logger("civic.tracking")
REPORT_ROLES = (Role.CREW, Role.COLLABORATOR, Role.DISPATCHER, Role.OPERATOR)
Reporter = Annotated[Principal, Depends(require(SERVICE, *REPORT_ROLES))]
Watcher = Annotated[Principal, Depends(require(SERVICE, *WATCH_ROLES))]
Kinds = Annotated[
    list[TrackedKind] | None, Query(alias="kind", description="Kinds to include; all if none.")
]
KindPath = Annotated[TrackedKind, Path(description="What the subject is.")]
SubjectPath = Annotated[str, Path(pattern=SUBJECT_ID_PATTERN, description="The device's own id.")]
Lat = Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="WGS84 latitude.")]
Lon = Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="WGS84 longitude.")]


def _tracker(request: Request) -> Tracker:
    try:
        return tracker_of(kernel_of(request))
    except LookupError as exc:
        raise Problem(503, "위치 추적이 실행 중이 아닙니다 (tracking is not running).") from exc


def _kinds(kinds: list[TrackedKind] | None) -> list[str]:
    return [kind.value for kind in kinds] if kinds else [kind.value for kind in TrackedKind]


@router.post("/positions", status_code=202)
async def post_positions(
    request: Request, batch: PositionBatch, principal: Reporter
) -> IngestResult:
    """Take a batch of positions of the caller's organisation (device or person).

    A malformed batch is refused whole (422). A well-formed position the server cannot use (a
    time ahead of the server clock, or older than the retention) is listed in `rejected`, with
    its index and the reason, and the rest are taken.
    """
    tracker = _tracker(request)
    if not principal.has_role(SERVICE, Role.CREW, Role.DISPATCHER, Role.OPERATOR):
        # A collaborator's phone reports where its owner is, and nobody else.
        for index, report in enumerate(batch.positions):
            if (
                report.kind is not TrackedKind.COLLABORATOR
                or report.subject_id != principal.user_id
            ):
                raise Problem(
                    403,
                    f"positions.{index}: 협력자는 자기 위치만 보낼 수 있습니다 (kind "
                    f"'collaborator', subject_id '{principal.user_id}').",
                )
    outcome = tracker.ingest(
        batch.positions, organisation_id=principal.organisation_id, source="http"
    )
    if outcome.rejected:
        log.info(
            "tracking_positions_rejected",
            principal=principal.name,
            rejected=len(outcome.rejected),
            first=outcome.rejected[0].reason,
        )
    return IngestResult(
        accepted=outcome.accepted,
        history_only=outcome.history_only,
        duplicates=outcome.duplicates,
        rejected=outcome.rejected,
    )


@router.get("/subjects")
async def list_subjects(
    request: Request, session: DbSession, principal: Watcher, kinds: Kinds = None
) -> list[SubjectRead]:
    """List the organisation's tracked subjects and where each was last."""
    return await access.read_subjects(
        session,
        _tracker(request),
        principal=principal,
        kinds=_kinds(kinds),
        context=audit_context(request),
    )


@router.get("/subjects/{kind}/{subject_id}")
async def get_subject(
    request: Request,
    session: DbSession,
    principal: Watcher,
    kind: KindPath,
    subject_id: SubjectPath,
) -> SubjectRead:
    """Show one subject and its last position."""
    found = await access.read_subject(
        session,
        _tracker(request),
        principal=principal,
        kind=kind.value,
        subject_id=subject_id,
        context=audit_context(request),
    )
    if found is None:
        raise Problem(404, f"추적 대상 {kind.value}/{subject_id}이(가) 없습니다.")
    return found


@router.get("/subjects/{kind}/{subject_id}/history")
async def get_history(
    request: Request,
    session: DbSession,
    principal: Watcher,
    kind: KindPath,
    subject_id: SubjectPath,
    since: Annotated[
        AwareDatetime | None, Query(description="From (default: an hour ago).")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Until, excluded (default: now).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> HistoryRead:
    """Show where a subject was over a time range, oldest first."""
    until = until or utcnow() + timedelta(minutes=1)
    since = since or until - timedelta(hours=1)
    found = await access.read_history(
        session,
        _tracker(request),
        principal=principal,
        kind=kind.value,
        subject_id=subject_id,
        since=since,
        until=until,
        limit=limit,
        context=audit_context(request),
    )
    if found is None:
        raise Problem(404, f"추적 대상 {kind.value}/{subject_id}이(가) 없습니다.")
    return found


@router.get("/nearby")
async def nearby(
    request: Request,
    session: DbSession,
    principal: Watcher,
    lat: Lat,
    lon: Lon,
    radius_m: Annotated[float, Query(gt=0, le=500_000, allow_inf_nan=False)],
    kinds: Kinds = None,
) -> list[NearbyRead]:
    """Find subjects with a signal within radius_m of a place, nearest first."""
    return await access.find_within(
        session,
        _tracker(request),
        principal=principal,
        kinds=_kinds(kinds),
        point=Point(lat, lon),
        radius_m=radius_m,
        context=audit_context(request),
    )


@router.get("/nearest")
async def nearest(
    request: Request,
    session: DbSession,
    principal: Watcher,
    lat: Lat,
    lon: Lon,
    k: Annotated[int, Query(ge=1, le=100)] = 5,
    kinds: Kinds = None,
) -> list[NearbyRead]:
    """Find the k subjects with a signal nearest to a place."""
    return await access.find_nearest(
        session,
        _tracker(request),
        principal=principal,
        kinds=_kinds(kinds),
        point=Point(lat, lon),
        k=k,
        context=audit_context(request),
    )


@router.get("/stats")
async def stats(request: Request, principal: Watcher) -> TrackingStats:
    """Show how many positions this process took, stored, refused and dropped."""
    tracker = _tracker(request)
    counters = tracker.state.counters
    return TrackingStats(
        subjects=len(tracker.state.by_id),
        with_signal=sum(len(index) for index in tracker.state.indexes.values()),
        pending=tracker.state.pending,
        stored=tracker.stored,
        accepted=counters.accepted,
        history_only=counters.history_only,
        duplicates=counters.duplicates,
        rejected=counters.rejected,
        malformed=counters.malformed,
        history_dropped=counters.history_dropped,
    )
