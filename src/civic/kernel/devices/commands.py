"""Commands to devices: queued in a transaction, sent over MQTT after commit, acknowledged.

`queue_command` records the command and publishes `devices.command_queued` in the caller's
transaction; a durable subscriber of the devices part sends it on
`civic/<org>/<kind>/<device>/commands` and marks it sent. The device answers on
`.../commands/ack` (or over HTTP) with `{"id": ..., "ok": true|false, "result": {...},
"error": "..."}` (signed like telemetry): delivered or failed. Unanswered commands expire.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.bus import publish
from civic.kernel.db import new_id
from civic.kernel.devices.events import CommandFinished, CommandQueued
from civic.kernel.devices.kinds import kind_named
from civic.kernel.devices.models import CommandStatus, Device, DeviceCommand
from civic.kernel.devices.registry import DeviceError

OPEN = (CommandStatus.QUEUED.value, CommandStatus.SENT.value)


async def queue_command(
    session: AsyncSession,
    *,
    device: Device,
    name: str,
    arguments: dict[str, Any],
    requested_by: str | None,
    expires_in: timedelta,
    now: datetime,
) -> DeviceCommand:
    """Record a command for device, checked against its kind; it is sent after commit."""
    kind = kind_named(device.kind)
    model = None if kind is None else kind.commands.get(name)
    if kind is None or model is None:
        known = ", ".join(sorted(kind.commands)) if kind else "-"
        raise DeviceError(f"'{device.kind}' 장치에는 '{name}' 명령이 없습니다 (가능: {known}).")
    try:
        checked = model.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or name}: {e['msg']}" for e in exc.errors()
        )
        raise DeviceError(f"명령 인자가 올바르지 않습니다: {problems}") from None
    command = DeviceCommand(
        id=new_id(),
        organisation_id=device.organisation_id,
        device_id=device.id,
        name=name,
        arguments=checked.model_dump(mode="json"),
        status=CommandStatus.QUEUED.value,
        requested_by=requested_by,
        expires_at=now + expires_in,
    )
    session.add(command)
    await publish(
        session,
        CommandQueued(
            organisation_id=device.organisation_id,
            device_id=device.id,
            command_id=command.id,
            command=name,
        ),
    )
    return command


def command_message(command: DeviceCommand) -> bytes:
    """Return the MQTT payload of a command."""
    return json.dumps(
        {
            "id": command.id,
            "name": command.name,
            "args": command.arguments,
            "expires_at": command.expires_at.isoformat(),
        },
        ensure_ascii=False,
    ).encode()


async def _finish(
    session: AsyncSession, command: DeviceCommand, status: CommandStatus, now: datetime
) -> None:
    command.status = status.value
    command.finished_at = now
    await publish(
        session,
        CommandFinished(
            organisation_id=command.organisation_id,
            device_id=command.device_id,
            command_id=command.id,
            command=command.name,
            status=status.value,
        ),
    )


async def acknowledge_command(
    session: AsyncSession,
    *,
    device_id: str,
    command_id: str,
    ok: bool,
    result: dict[str, Any] | None,
    error: str | None,
    now: datetime,
) -> DeviceCommand:
    """Record a device's answer to a command: delivered when ok, else failed."""
    command = await session.get(DeviceCommand, command_id)
    if command is None or command.device_id != device_id:
        raise DeviceError(f"이 장치의 명령 {command_id!r}가 없습니다.")
    if command.status not in OPEN:
        raise DeviceError(f"명령이 이미 끝났습니다 ({command.status}).")
    command.result = result
    command.error = None if ok else (error or "device reported failure")[:2000]
    await _finish(session, command, CommandStatus.DELIVERED if ok else CommandStatus.FAILED, now)
    return command


async def expire_commands(session: AsyncSession, *, now: datetime) -> int:
    """Expire open commands past their deadline; return how many."""
    rows = await session.scalars(
        select(DeviceCommand)
        .where(DeviceCommand.status.in_(OPEN), DeviceCommand.expires_at <= now)
        .limit(500)
    )
    count = 0
    for command in rows:
        await _finish(session, command, CommandStatus.EXPIRED, now)
        count += 1
    return count
