"""JSON API of devices: registry, telemetry over HTTP, series, rules, alarms, commands."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from sqlalchemy import select

from civic.kernel import audit
from civic.kernel.access import get_owned, scoped
from civic.kernel.db import utcnow
from civic.kernel.devices import alarms as alarm_rules
from civic.kernel.devices.commands import queue_command
from civic.kernel.devices.ingest import Rejected
from civic.kernel.devices.kinds import registered_kinds
from civic.kernel.devices.models import Alarm, AlarmRule, AlarmStatus, Device, DeviceCommand
from civic.kernel.devices.part import DevicesPart, devices_of
from civic.kernel.devices.registry import (
    DeviceConflict,
    DeviceError,
    DeviceRef,
    device_topic,
    load_reference_by_id,
    register_device,
    rotate_credential,
    token_matches,
)
from civic.kernel.devices.schemas import (
    AlarmRead,
    CommandAck,
    CommandCreate,
    CommandRead,
    DeviceCreate,
    DeviceCredential,
    DeviceRead,
    IngestStatsRead,
    KindRead,
    PointRead,
    RuleRead,
    SeriesRead,
    SilenceRuleCreate,
    TelemetryAccepted,
    ThresholdRuleCreate,
)
from civic.kernel.devices.series import series
from civic.kernel.identity import Principal, Role
from civic.kernel.mqtt import mqtt_of
from civic.kernel.web.deps import DbSession, audit_context, kernel_of, require
from civic.kernel.web.problems import Problem, problem_responses

router = APIRouter(prefix="/api/devices", tags=["devices"])
SERVICE = "devices"
Operator = Annotated[Principal, Depends(require(SERVICE, Role.OPERATOR))]
Reader = Annotated[
    Principal, Depends(require(SERVICE, Role.OPERATOR, Role.DISPATCHER, Role.INSPECTOR))
]


def _part(request: Request) -> DevicesPart:
    return devices_of(kernel_of(request))


async def _owned_device(session: DbSession, device_id: str, principal: Principal) -> Device:
    device = await get_owned(session, Device, device_id, principal=principal)
    if device is None:
        raise Problem(404, f"장치 {device_id}가 없습니다.")
    return device


async def _device_by_token(request: Request, session: DbSession, device_id: str) -> DeviceRef:
    """Admit the device itself: its own bearer token, for its own id only."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    device = await load_reference_by_id(session, device_id=device_id)
    if (
        scheme.lower() != "bearer"
        or device is None
        or not token_matches(device.credential_hash, token.strip())
    ):
        raise Problem(
            401, "장치 토큰이 없거나 맞지 않습니다.", headers={"WWW-Authenticate": "Bearer"}
        )
    if not device.active:
        raise Problem(403, "사용이 중지된 장치입니다.")
    return device


DeviceItself = Annotated[DeviceRef, Depends(_device_by_token)]


@router.get("/kinds")
async def list_kinds(principal: Reader) -> list[KindRead]:
    """List the registered kinds of device with their telemetry and command schemas."""
    return [
        KindRead(
            name=kind.name,
            title=kind.title,
            telemetry=kind.telemetry.model_json_schema(),
            commands={name: model.model_json_schema() for name, model in kind.commands.items()},
        )
        for kind in registered_kinds()
    ]


@router.get("/ingest")
async def ingest_stats(request: Request, principal: Reader) -> IngestStatsRead:
    """Counters of accepted and rejected telemetry (by reason) and alarm latency."""
    part = _part(request)
    mqtt = mqtt_of(kernel_of(request))
    latencies = sorted(part.alarm_latencies)
    p50 = p99 = None
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        p50, p99 = cuts[49] * 1000, cuts[98] * 1000
    return IngestStatsRead(
        **part.stats.as_dict(),
        queued=part.queued,
        mqtt=vars(mqtt.stats),
        mqtt_url=mqtt.url if mqtt.connected else None,
        alarm_latency_p50_ms=p50,
        alarm_latency_p99_ms=p99,
    )


@router.get("/rules")
async def list_rules(session: DbSession, principal: Reader) -> list[RuleRead]:
    """List the organisation's alarm rules."""
    stmt = scoped(select(AlarmRule), AlarmRule.organisation_id, principal).order_by(AlarmRule.name)
    return [RuleRead.model_validate(r) for r in await session.scalars(stmt)]


@router.post("/rules", status_code=201)
async def create_rule(
    body: Annotated[ThresholdRuleCreate | SilenceRuleCreate, Body(discriminator="condition")],
    request: Request,
    session: DbSession,
    principal: Operator,
) -> RuleRead:
    """Create an alarm rule for the organisation's devices."""
    if body.device_id is not None:
        await _owned_device(session, body.device_id, principal)
    threshold = body if isinstance(body, ThresholdRuleCreate) else None
    rule = await alarm_rules.create_rule(
        session,
        organisation_id=principal.organisation_id,
        name=body.name,
        kind=body.kind,
        device_id=body.device_id,
        severity=body.severity,
        silent_seconds=body.silent_seconds if isinstance(body, SilenceRuleCreate) else None,
        metric=threshold.metric if threshold else None,
        operator_=threshold.operator if threshold else None,
        threshold=threshold.threshold if threshold else None,
        for_seconds=threshold.for_seconds if threshold else 0,
        times_in_row=threshold.times_in_row if threshold else 1,
    )
    await audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CREATE,
        subject_type="device_alarm_rule",
        subject_id=rule.id,
        context=audit_context(request),
    )
    _part(request).rules.invalidate()
    return RuleRead.model_validate(rule)


@router.get("/alarms")
async def list_alarms(
    session: DbSession,
    principal: Reader,
    status: Annotated[Literal["active", "cleared", "all"], Query()] = "active",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlarmRead]:
    """List the organisation's alarms, newest first."""
    stmt = scoped(select(Alarm), Alarm.organisation_id, principal)
    if status != "all":
        stmt = stmt.where(Alarm.status == status)
    stmt = stmt.order_by(Alarm.raised_at.desc()).limit(limit)
    return [AlarmRead.model_validate(a) for a in await session.scalars(stmt)]


@router.post("/alarms/{alarm_id}/acknowledge", responses=problem_responses(409))
async def acknowledge_alarm(
    alarm_id: str, request: Request, session: DbSession, principal: Operator
) -> AlarmRead:
    """Acknowledge an alarm: somebody takes care of it, escalation stops."""
    alarm = await get_owned(session, Alarm, alarm_id, principal=principal)
    if alarm is None:
        raise Problem(404, f"경보 {alarm_id}가 없습니다.")
    if not await alarm_rules.acknowledge_alarm(
        session, alarm=alarm, user_id=principal.user_id, now=utcnow()
    ):
        raise Problem(409, "이미 확인된 경보입니다.")
    await audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.UPDATE,
        subject_type="device_alarm",
        subject_id=alarm.id,
        detail={"acknowledged": True, "active": alarm.status == AlarmStatus.ACTIVE.value},
        context=audit_context(request),
    )
    return AlarmRead.model_validate(alarm)


@router.get("")
async def list_devices(
    session: DbSession,
    principal: Reader,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[DeviceRead]:
    """List the organisation's devices."""
    stmt = scoped(select(Device), Device.organisation_id, principal)
    if kind is not None:
        stmt = stmt.where(Device.kind == kind)
    stmt = stmt.order_by(Device.external_id).limit(limit)
    return [DeviceRead.model_validate(d) for d in await session.scalars(stmt)]


@router.post("", status_code=201, responses=problem_responses(409))
async def create_device(
    body: DeviceCreate, request: Request, session: DbSession, principal: Operator
) -> DeviceCredential:
    """Register a device; the answer holds its token, shown only this once."""
    try:
        device, token = await register_device(
            session,
            organisation_id=principal.organisation_id,
            kind=body.kind,
            external_id=body.external_id,
            name=body.name,
            lat=body.place.lat if body.place else None,
            lon=body.place.lon if body.place else None,
            configuration=body.configuration,
            firmware=body.firmware,
        )
    except DeviceConflict as exc:
        raise Problem(409, str(exc)) from None
    except DeviceError as exc:
        raise Problem(422, str(exc)) from None
    await audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CREATE,
        subject_type="device",
        subject_id=device.id,
        detail={"kind": device.kind, "external_id": device.external_id},
        context=audit_context(request),
    )
    return await _credential(session, device, token)


async def _credential(session: DbSession, device: Device, token: str) -> DeviceCredential:
    ref = await load_reference_by_id(session, device_id=device.id)
    assert ref is not None  # noqa: S101 - flushed in this transaction
    return DeviceCredential(
        device=DeviceRead.model_validate(device),
        token=token,
        telemetry_topic=device_topic(ref, "telemetry"),
        command_topic=device_topic(ref, "commands"),
    )


@router.get("/{device_id}")
async def read_device(device_id: str, session: DbSession, principal: Reader) -> DeviceRead:
    """Read one device."""
    return DeviceRead.model_validate(await _owned_device(session, device_id, principal))


@router.post("/{device_id}/credential")
async def rotate_device_credential(
    device_id: str, request: Request, session: DbSession, principal: Operator
) -> DeviceCredential:
    """Issue a new token for a device; the old one stops working."""
    device = await _owned_device(session, device_id, principal)
    token = await rotate_credential(session, device=device)
    await audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.UPDATE,
        subject_type="device",
        subject_id=device.id,
        detail={"credential": "rotated"},
        context=audit_context(request),
    )
    credential = await _credential(session, device, token)
    organisation_code = credential.telemetry_topic.split("/")[1]
    _part(request).directory.forget(organisation_code, device.external_id)
    return credential


@router.post("/{device_id}/telemetry", status_code=202)
async def post_telemetry(request: Request, device: DeviceItself) -> TelemetryAccepted:
    """Send one telemetry message as the device ({"id", "ts"?, "data"}), bearer device token."""
    body = await request.body()
    try:
        stored = await _part(request).ingest_http(device, body)
    except Rejected as rejected:
        raise Problem(422, rejected.detail, reason=rejected.reason.value) from None
    return TelemetryAccepted(stored=stored)


@router.get("/{device_id}/series")
async def read_series(
    device_id: str,
    session: DbSession,
    principal: Reader,
    metric: Annotated[str, Query(max_length=60)],
    start: datetime,
    end: datetime | None = None,
    resolution: Literal["raw", "1m", "1h"] = "raw",
) -> SeriesRead:
    """Return a device's metric over [start, end): raw samples or 1-minute / 1-hour rollups."""
    device = await _owned_device(session, device_id, principal)
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise Problem(422, "start와 end에는 시간대(Z 또는 +09:00)가 필요합니다.")
    end = end or utcnow() + timedelta(seconds=1)
    points = await series(
        session, device_id=device.id, metric=metric, start=start, end=end, resolution=resolution
    )
    return SeriesRead(
        device_id=device.id,
        metric=metric,
        resolution=resolution,
        points=[PointRead(**vars(p)) for p in points],
    )


@router.post("/{device_id}/commands", status_code=202)
async def send_command(
    device_id: str, body: CommandCreate, request: Request, session: DbSession, principal: Operator
) -> CommandRead:
    """Queue a command; it is published to the device on MQTT once this request commits."""
    device = await _owned_device(session, device_id, principal)
    default = kernel_of(request).settings.devices.command_timeout_seconds
    try:
        command = await queue_command(
            session,
            device=device,
            name=body.name,
            arguments=body.arguments,
            requested_by=principal.user_id,
            expires_in=timedelta(seconds=body.timeout_seconds or default),
            now=utcnow(),
        )
    except DeviceError as exc:
        raise Problem(422, str(exc)) from None
    await audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CREATE,
        subject_type="device_command",
        subject_id=command.id,
        detail={"device_id": device.id, "command": body.name},
        context=audit_context(request),
    )
    await session.flush()
    return CommandRead.model_validate(command)


@router.get("/{device_id}/commands/{command_id}")
async def read_command(
    device_id: str, command_id: str, session: DbSession, principal: Reader
) -> CommandRead:
    """Read a command and its delivery status."""
    command = await get_owned(session, DeviceCommand, command_id, principal=principal)
    if command is None or command.device_id != device_id:
        raise Problem(404, f"명령 {command_id}가 없습니다.")
    return CommandRead.model_validate(command)


@router.post("/{device_id}/commands/{command_id}/ack", responses=problem_responses(409))
async def acknowledge_command(
    command_id: str, body: CommandAck, request: Request, device: DeviceItself
) -> CommandRead:
    """Answer a command as the device (bearer device token): delivered or failed."""
    try:
        command = await _part(request).acknowledge(device, {"id": command_id, **body.model_dump()})
    except DeviceError as exc:
        raise Problem(409, str(exc)) from None
    return CommandRead.model_validate(command)
