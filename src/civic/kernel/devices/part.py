"""The devices kernel part: MQTT and HTTP ingest into batched transactions, checks, commands.

Messages are parsed and validated as they arrive and wait in a bounded queue (a full queue
slows the MQTT reader down instead of dropping). One writer drains it in batches: one
transaction per batch stores the raw samples in bulk, evaluates the alarm rules and notes when
devices were last seen, so throughput grows with the batch instead of paying a commit per
message. A maintenance task checks silence, escalates unacknowledged alarms, expires commands
and purges old raw samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.db import transaction, utcnow
from civic.kernel.devices.alarms import RuleEngine, escalate_overdue
from civic.kernel.devices.commands import (
    acknowledge_command,
    command_message,
    expire_commands,
)
from civic.kernel.devices.events import CommandQueued
from civic.kernel.devices.ingest import (
    DeviceDirectory,
    IngestStats,
    RecentIds,
    Rejected,
    Rejection,
    Sample,
    decode_object,
    parse_topic,
    validate,
)
from civic.kernel.devices.models import CommandStatus, Device, DeviceCommand
from civic.kernel.devices.registry import (
    DeviceError,
    DeviceRef,
    device_topic,
    load_reference,
    load_reference_by_id,
    signature_valid,
)
from civic.kernel.devices.series import (
    RollupBuffer,
    known_ids,
    merge_rollups,
    purge_raw,
    store_samples,
)
from civic.kernel.mqtt import mqtt_of
from civic.kernel.relay import bus_of
from civic.kernel.runtime import Kernel
from civic.kernel.settings import DevicesSettings

log = structlog.get_logger("civic.devices")
TELEMETRY_TOPICS = "civic/+/+/+/telemetry"
ACK_TOPICS = "civic/+/+/+/commands/ack"
_SEEN_WRITE_SECONDS = 10.0
_PURGE_SECONDS = 3600.0
_Item = tuple[Sample, "asyncio.Future[bool] | None"]


class DevicesPart:
    """Kernel part that ingests telemetry, evaluates alarm rules and delivers commands."""

    name = "devices"

    def __init__(self, settings: DevicesSettings) -> None:
        """Prepare the pipeline; nothing runs before start."""
        self.settings = settings
        self.stats = IngestStats()
        self.rules = RuleEngine()
        self.rollups = RollupBuffer()
        self.recent = RecentIds()
        self.alarm_latencies: deque[float] = deque(maxlen=100_000)
        self.last_seen: dict[str, datetime] = {}
        self._seen_written: dict[str, float] = {}
        self._kernel: Kernel | None = None
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(settings.queue_size)
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.directory = DeviceDirectory(self._load_device)

    @property
    def kernel(self) -> Kernel:
        """The kernel this part runs in."""
        if self._kernel is None:
            raise RuntimeError("the devices part has not started")
        return self._kernel

    async def start(self, kernel: Kernel) -> None:
        """Route the MQTT topics, load rules and active alarms, start writer and checks."""
        self._kernel = kernel
        self._queue = asyncio.Queue(self.settings.queue_size)
        async with kernel.sessions() as session:
            await self.rules.load(session, alarms=True)
        mqtt = mqtt_of(kernel)
        mqtt.route(TELEMETRY_TOPICS, self._on_mqtt_telemetry)
        mqtt.route(ACK_TOPICS, self._on_mqtt_ack)
        bus_of(kernel).subscribe(CommandQueued, handler=self._send_command, name="devices.send")
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="civic-devices-writer"),
            asyncio.create_task(self._maintenance_loop(), name="civic-devices-checks"),
        ]

    async def stop(self) -> None:
        """Store what is queued, merge pending rollups, stop the tasks."""
        if not self._tasks:
            return
        writer, checks = self._tasks
        checks.cancel()
        await self._queue.put(None)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(writer, timeout=10)
        with contextlib.suppress(asyncio.CancelledError):
            await checks
        self._tasks = []
        try:
            await self.flush_rollups()
        except Exception:
            log.exception("rollup_merge_failed_at_stop")

    async def flush_rollups(self) -> None:
        """Merge the rollup contributions summed in memory into the table now."""
        pending = self.rollups.take()
        try:
            async with transaction(self.kernel.sessions) as session:
                await merge_rollups(session, pending)
        except BaseException:
            self.rollups.restore(pending)
            raise

    # --- ingest -----------------------------------------------------------------------------

    async def _load_device(self, organisation_code: str, external_id: str) -> DeviceRef | None:
        async with self.kernel.sessions() as session:
            return await load_reference(
                session, organisation_code=organisation_code, external_id=external_id
            )

    async def _on_mqtt_telemetry(self, topic: str, payload: bytes) -> None:
        received_at = utcnow()
        try:
            organisation, kind, external_id, _ = parse_topic(topic)
            device = await self.directory.lookup(organisation, external_id)
            if device is None:
                raise Rejected(Rejection.UNKNOWN_DEVICE, f"no device {organisation}/{external_id}")
            message = decode_object(payload)
            signed = self.settings.require_signature
            try:
                sample = validate(
                    device, message, kind=kind, signed=signed, received_at=received_at
                )
            except Rejected as rejected:
                if rejected.reason is not Rejection.SIGNATURE:
                    raise
                # The device may have a new token that the cache has not seen yet.
                fresh = await self.directory.refresh(organisation, external_id)
                if fresh is None or fresh.credential_hash == device.credential_hash:
                    raise
                sample = validate(fresh, message, kind=kind, signed=signed, received_at=received_at)
        except Rejected as rejected:
            self.stats.reject(rejected.reason, rejected.detail, topic=topic)
            return
        await self._queue.put((sample, None))

    async def ingest_http(self, device: DeviceRef, payload: bytes) -> bool:
        """Validate and store one message sent over HTTP; False if it was a duplicate."""
        try:
            sample = validate(
                device, decode_object(payload), kind=None, signed=False, received_at=utcnow()
            )
        except Rejected as rejected:
            self.stats.reject(rejected.reason, rejected.detail, device=device.id, via="http")
            raise
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((sample, stored))
        return await stored

    @property
    def queued(self) -> int:
        """Messages waiting to be stored."""
        return self._queue.qsize()

    async def _write_loop(self) -> None:
        while True:
            item = await self._queue.get()
            batch: list[_Item] = []
            stopping = item is None
            if item is not None:
                batch.append(item)
            stopping = self._drain(batch) or stopping
            if batch and not stopping and len(batch) < self.settings.batch_size:
                # A moment's wait turns a trickle of one-message transactions into a batch.
                await asyncio.sleep(self.settings.batch_wait_ms / 1000)
                stopping = self._drain(batch)
            if batch:
                await self._write(batch)
            if stopping and self._queue.empty():
                return

    def _drain(self, batch: list[_Item]) -> bool:
        """Move queued messages into batch up to its size; True if stop was asked."""
        stopping = False
        while len(batch) < self.settings.batch_size:
            try:
                more = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if more is None:
                stopping = True
            else:
                batch.append(more)
        return stopping

    async def _write(self, batch: list[_Item]) -> None:
        fresh: list[_Item] = []
        duplicates: list[_Item] = []
        in_batch: set[tuple[str, str]] = set()
        for item in batch:
            key = (item[0].device.id, item[0].message_id)
            if key in in_batch or self.recent.seen(*key):
                duplicates.append(item)
            else:
                in_batch.add(key)
                fresh.append(item)
        pending = self.rollups.take() if self.rollups.due() else {}
        async with self._lock:
            self.rules.raised_clocks.clear()
            try:
                async with transaction(self.kernel.sessions) as session:
                    cold = [s for s, _ in fresh if not self.recent.known_device(s.device.id)]
                    stored_before = await known_ids(session, cold)
                    if stored_before:
                        duplicates += [
                            i for i in fresh if (i[0].device.id, i[0].message_id) in stored_before
                        ]
                        fresh = [
                            i
                            for i in fresh
                            if (i[0].device.id, i[0].message_id) not in stored_before
                        ]
                    samples = [sample for sample, _ in fresh]
                    await self._store(session, samples, pending)
            except Exception as exc:
                await self._failed(batch, pending, exc)
                return
            raised = list(self.rules.raised_clocks)
        committed = time.perf_counter()
        self.alarm_latencies.extend(committed - clock for clock in raised)
        self.rollups.add(samples)
        for sample in samples:
            self.recent.add(sample.device.id, sample.message_id)
            self.last_seen[sample.device.id] = sample.received_at
        for device_id in {s.device.id for s, _ in batch}:
            self.recent.mark_known(device_id)
        self.stats.accepted += len(samples)
        self.stats.batches += 1
        for sample, future in duplicates:
            self.stats.reject(Rejection.DUPLICATE, sample.message_id, device=sample.device.id)
            if future is not None and not future.done():
                future.set_result(False)
        for _, future in fresh:
            if future is not None and not future.done():
                future.set_result(True)

    async def _store(
        self, session: AsyncSession, samples: list[Sample], pending: dict[Any, Any]
    ) -> None:
        await store_samples(session, samples)
        await self.rules.evaluate(session, samples)
        await merge_rollups(session, pending)
        # last_seen_at is written at most every few seconds per device, not once per message.
        now = time.monotonic()
        stale: dict[str, datetime] = {}
        for sample in samples:
            device_id = sample.device.id
            if now - self._seen_written.get(device_id, float("-inf")) >= _SEEN_WRITE_SECONDS:
                stale[device_id] = sample.received_at
        if stale:
            await session.execute(
                update(Device), [{"id": key, "last_seen_at": at} for key, at in stale.items()]
            )
            self._seen_written.update(dict.fromkeys(stale, now))

    async def _failed(self, batch: list[_Item], pending: dict[Any, Any], exc: Exception) -> None:
        log.error("telemetry_batch_failed", size=len(batch), error=repr(exc))
        self.rollups.restore(pending)
        for sample, future in batch:
            self.stats.reject(Rejection.STORE_FAILED, repr(exc)[:200], device=sample.device.id)
            if future is not None and not future.done():
                future.set_exception(exc)
        try:
            # Alarms raised or cleared in the rolled-back transaction never happened.
            async with self.kernel.sessions() as session:
                await self.rules.load(session, alarms=True)
        except Exception:
            log.exception("alarm_state_reload_failed")

    # --- periodic checks --------------------------------------------------------------------

    async def _maintenance_loop(self) -> None:
        last_purge = float("-inf")
        while True:
            await asyncio.sleep(self.settings.check_seconds)
            try:
                purge = time.monotonic() - last_purge >= _PURGE_SECONDS
                await self.run_checks(purge=purge)
                if purge:
                    last_purge = time.monotonic()
            except Exception:
                log.exception("device_checks_failed")

    async def run_checks(self, *, now: datetime | None = None, purge: bool = False) -> None:
        """Raise silence alarms, escalate unacknowledged ones, expire commands (and purge)."""
        now = now or utcnow()
        async with self._lock, transaction(self.kernel.sessions) as session:
            try:
                await self.rules.check_silence(session, now=now, last_seen=self.last_seen)
            except BaseException:
                await session.rollback()
                await self.rules.load(session, alarms=True)
                raise
        async with transaction(self.kernel.sessions) as session:
            after = timedelta(minutes=self.settings.escalate_after_minutes)
            await escalate_overdue(session, now=now, after=after)
            await expire_commands(session, now=now)
            if purge:
                retention = timedelta(days=self.settings.raw_retention_days)
                await purge_raw(session, older_than=retention, now=now)

    # --- commands ---------------------------------------------------------------------------

    async def _send_command(self, session: AsyncSession, event: CommandQueued) -> None:
        command = await session.get(DeviceCommand, event.command_id)
        if command is None or command.status != CommandStatus.QUEUED.value:
            return
        if command.expires_at <= utcnow():
            return  # the checks expire it
        device = await session.get(Device, command.device_id)
        if device is None:
            return
        ref = await load_reference_by_id(session, device_id=device.id)
        assert ref is not None  # noqa: S101 - the device was just loaded
        await mqtt_of(self.kernel).publish(device_topic(ref, "commands"), command_message(command))
        command.status = CommandStatus.SENT.value
        command.sent_at = utcnow()

    async def _on_mqtt_ack(self, topic: str, payload: bytes) -> None:
        try:
            organisation, kind, external_id, _ = parse_topic(topic)
            device = await self.directory.lookup(organisation, external_id)
            if device is None or device.kind != kind:
                raise Rejected(Rejection.UNKNOWN_DEVICE, f"no {kind} {organisation}/{external_id}")
            message = decode_object(payload)
            if self.settings.require_signature and not signature_valid(
                device.credential_hash, message
            ):
                raise Rejected(Rejection.SIGNATURE, "sig is missing or does not match")
            await self.acknowledge(device, message)
        except Rejected as rejected:
            self.stats.reject(rejected.reason, rejected.detail, topic=topic)
        except DeviceError as exc:
            self.stats.reject(Rejection.SCHEMA, str(exc), topic=topic)

    async def acknowledge(self, device: DeviceRef, message: dict[str, Any]) -> DeviceCommand:
        """Record a device's acknowledgement {"id", "ok", "result"?, "error"?} of a command."""
        command_id, ok = message.get("id"), message.get("ok")
        result, error = message.get("result"), message.get("error")
        if not isinstance(command_id, str) or not isinstance(ok, bool):
            raise DeviceError("응답에는 문자열 id와 참/거짓 ok가 필요합니다.")
        if result is not None and not isinstance(result, dict):
            raise DeviceError("result는 객체여야 합니다.")
        async with transaction(self.kernel.sessions) as session:
            return await acknowledge_command(
                session,
                device_id=device.id,
                command_id=command_id,
                ok=ok,
                result=result,
                error=str(error) if error is not None else None,
                now=utcnow(),
            )


def devices_of(kernel: Kernel) -> DevicesPart:
    """Return the devices part of a running kernel."""
    return kernel.part("devices", DevicesPart)
