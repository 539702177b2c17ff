"""Telemetry messages: topic and payload parsing, validation per kind, counters, device cache.

A telemetry message is a JSON object:
`{"id": "<message id>", "ts": "<device time, ISO 8601 or epoch seconds; optional>",
"data": {<the kind's telemetry>}, "sig": "<HMAC, over MQTT>"}`.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from civic.kernel.devices.kinds import kind_named
from civic.kernel.devices.registry import DeviceRef, signature_valid

log = structlog.get_logger("civic.devices")
# A device clock this far ahead is wrong; its sample is filed under the time it arrived.
_MAX_CLOCK_AHEAD = timedelta(minutes=5)
_MAX_MESSAGE_ID = 64


class Rejection(StrEnum):
    """Why a telemetry message was not stored."""

    TOPIC = "topic"
    MALFORMED = "malformed"
    SCHEMA = "schema"
    UNKNOWN_DEVICE = "unknown_device"
    WRONG_KIND = "wrong_kind"
    DISABLED = "disabled"
    SIGNATURE = "signature"
    DUPLICATE = "duplicate"
    STORE_FAILED = "store_failed"


class Rejected(Exception):
    """A message that is refused, with the reason counted and a detail for the log."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        """Keep the reason and detail."""
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Sample:
    """A validated telemetry message waiting to be stored."""

    device: DeviceRef
    message_id: str
    sampled_at: datetime
    received_at: datetime
    data: dict[str, Any]
    metrics: dict[str, float]
    received_clock: float = field(default_factory=time.perf_counter)


@dataclass
class IngestStats:
    """Counts of accepted and rejected messages, by reason; rejections are logged (throttled)."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    recent: deque[tuple[str, str, str]] = field(default_factory=lambda: deque(maxlen=200))
    _last_logged: dict[str, float] = field(default_factory=dict)
    _suppressed: Counter[str] = field(default_factory=Counter)

    def reject(self, reason: Rejection, detail: str, **context: Any) -> None:
        """Count a rejection and log it, at most once a second per reason."""
        self.rejected[reason.value] += 1
        where = str(context.get("topic") or context.get("device") or "")
        self.recent.append((reason.value, where, detail[:200]))
        now = time.monotonic()
        if now - self._last_logged.get(reason.value, 0.0) < 1.0:
            self._suppressed[reason.value] += 1
            return
        self._last_logged[reason.value] = now
        suppressed = self._suppressed.pop(reason.value, 0)
        log.warning(
            "telemetry_rejected",
            reason=reason.value,
            detail=detail,
            suppressed=suppressed,
            **context,
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the counters for the API."""
        return {
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "batches": self.batches,
        }


def parse_topic(topic: str) -> tuple[str, str, str, str]:
    """Split civic/<org>/<kind>/<device>/<leaf...> into its four parts (leaf may have slashes)."""
    parts = topic.split("/", 4)
    if len(parts) != 5 or parts[0] != "civic" or not all(parts[1:]):
        raise Rejected(Rejection.TOPIC, f"topic {topic!r} is not civic/<org>/<kind>/<device>/...")
    return parts[1], parts[2], parts[3], parts[4]


def decode_object(payload: bytes) -> dict[str, Any]:
    """Parse a JSON object or raise Rejected(MALFORMED)."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected(Rejection.MALFORMED, f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise Rejected(Rejection.MALFORMED, "the message must be a JSON object")
    return message


def _device_time(value: Any, received_at: datetime) -> datetime:
    if value is None:
        return received_at
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            at = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            raise ValueError(value)
    except (ValueError, OverflowError, OSError):
        raise Rejected(Rejection.SCHEMA, f"ts {value!r} is no ISO 8601 time or epoch") from None
    if at.tzinfo is None:
        raise Rejected(Rejection.SCHEMA, "ts needs a time zone (Z or +09:00)")
    at = at.astimezone(UTC)
    return received_at if at - received_at > _MAX_CLOCK_AHEAD else at


def validate(
    device: DeviceRef,
    message: dict[str, Any],
    *,
    kind: str | None,
    signed: bool,
    received_at: datetime,
) -> Sample:
    """Check a decoded message from device (topic kind, signature, schema) into a Sample."""
    if not device.active:
        raise Rejected(Rejection.DISABLED, f"device {device.external_id} is disabled")
    if kind is not None and kind != device.kind:
        raise Rejected(Rejection.WRONG_KIND, f"device is a {device.kind}, topic says {kind}")
    device_kind = kind_named(device.kind)
    if device_kind is None:
        raise Rejected(Rejection.WRONG_KIND, f"kind {device.kind!r} is not registered here")
    if signed and not signature_valid(device.credential_hash, message):
        raise Rejected(Rejection.SIGNATURE, "sig is missing or does not match")
    message_id = message.get("id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= _MAX_MESSAGE_ID:
        raise Rejected(Rejection.SCHEMA, "id must be a string of 1 to 64 characters")
    unknown = set(message) - {"id", "ts", "data", "sig"}
    if unknown:
        raise Rejected(Rejection.SCHEMA, f"unknown fields {sorted(unknown)}")
    data = message.get("data")
    if not isinstance(data, dict):
        raise Rejected(Rejection.SCHEMA, "data must be an object")
    try:
        model = device_kind.telemetry.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise Rejected(Rejection.SCHEMA, problems[:500]) from None
    clean = model.model_dump(exclude_none=True)
    return Sample(
        device=device,
        message_id=message_id,
        sampled_at=_device_time(message.get("ts"), received_at),
        received_at=received_at,
        data=clean,
        metrics=device_kind.metrics_of(clean),
    )


Loader = Callable[[str, str], Awaitable[DeviceRef | None]]


class DeviceDirectory:
    """Devices by (organisation code, device id), cached for ttl seconds, misses included."""

    def __init__(self, load: Loader, *, ttl: float = 30.0, size: int = 100_000) -> None:
        """Load devices with load(org_code, external_id) on a miss."""
        self._load = load
        self.ttl = ttl
        self.size = size
        self._cache: OrderedDict[tuple[str, str], tuple[float, DeviceRef | None]] = OrderedDict()

    async def lookup(self, organisation_code: str, external_id: str) -> DeviceRef | None:
        """Return the device, from the cache while it is fresh."""
        key = (organisation_code, external_id)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        device = await self._load(organisation_code, external_id)
        self._cache[key] = (now, device)
        self._cache.move_to_end(key)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return device

    async def refresh(
        self, organisation_code: str, external_id: str, *, min_age: float = 5.0
    ) -> DeviceRef | None:
        """Reload a device whose cached entry may be stale (a new token), at most every min_age."""
        hit = self._cache.get((organisation_code, external_id))
        if hit is not None and time.monotonic() - hit[0] < min_age:
            return hit[1]
        self._cache.pop((organisation_code, external_id), None)
        return await self.lookup(organisation_code, external_id)

    def forget(self, organisation_code: str | None = None, external_id: str | None = None) -> None:
        """Drop one device (or all) from the cache after it changed."""
        if organisation_code is None or external_id is None:
            self._cache.clear()
        else:
            self._cache.pop((organisation_code, external_id), None)


class RecentIds:
    """The last message ids seen per device, to drop redeliveries without a query."""

    def __init__(self, per_device: int = 512) -> None:
        """Remember per_device ids for each device."""
        self.per_device = per_device
        self._ids: dict[str, OrderedDict[str, None]] = {}

    def known_device(self, device_id: str) -> bool:
        """Whether ids of this device were loaded or seen since start."""
        return device_id in self._ids

    def seen(self, device_id: str, message_id: str) -> bool:
        """Whether this message id of the device was seen lately."""
        ids = self._ids.get(device_id)
        return ids is not None and message_id in ids

    def add(self, device_id: str, message_id: str) -> None:
        """Remember a message id."""
        ids = self._ids.setdefault(device_id, OrderedDict())
        ids[message_id] = None
        if len(ids) > self.per_device:
            ids.popitem(last=False)

    def mark_known(self, device_id: str) -> None:
        """Note that the device's stored ids have been checked."""
        self._ids.setdefault(device_id, OrderedDict())
