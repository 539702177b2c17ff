"""The device registry and per-device credentials.

Each device gets one secret token when it is registered (or its credential is rotated); only
its SHA-256 digest is stored (`civic.kernel.identity.token_digest`). Over HTTP the device sends
the token as a bearer token. Over MQTT, brokers in development (the embedded amqtt broker, a
stock Mosquitto) have no per-device accounts or ACLs, so any client could publish on any
device's topic, and a token inside the payload would be read by anyone who subscribes to
`civic/#`. Each MQTT message therefore carries `sig`, an HMAC-SHA256 of the message keyed with
the token's digest: a subscriber can neither learn the key nor forge a message, and a replayed
message is dropped by its message id. The canonical form signed is the JSON of the message
without `sig`: keys sorted, no spaces, UTF-8 unescaped, numbers in their shortest round-trip
form (`21.5`, `400`, `1e-7`), as `canonical` writes it; a device that sends its canonical bytes
with `sig` added in front passes. The stored digest is thus the
signing key: protect the database like a key store. Behind a broker that enforces per-device
ACLs, `devices.require_signature` can be turned off.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.devices.kinds import kind_named
from civic.kernel.devices.models import Device, DeviceStatus
from civic.kernel.identity import Organisation, token_digest

TOKEN_PREFIX = "dev_"  # noqa: S105 - a prefix, not a secret
_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9_.:\-]{1,80}$")


class DeviceError(ValueError):
    """A request about devices that cannot be carried out; the message says why."""


class DeviceConflict(DeviceError):
    """The device exists already."""


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What ingest needs to know of a device, cached in memory."""

    id: str
    organisation_id: str
    organisation_code: str
    kind: str
    external_id: str
    credential_hash: str | None
    active: bool


def topic_safe(value: str) -> bool:
    """Whether value can be one level of an MQTT topic (no /, + or #, no spaces)."""
    return bool(_TOPIC_SAFE.match(value))


def device_topic(ref: DeviceRef, leaf: str) -> str:
    """Return the topic civic/<org>/<kind>/<device>/<leaf> of a device."""
    return f"civic/{ref.organisation_code}/{ref.kind}/{ref.external_id}/{leaf}"


def canonical(message: dict[str, Any]) -> bytes:
    """Return the bytes a device signs: the message without sig, sorted keys, compact JSON."""
    unsigned = {key: value for key, value in message.items() if key != "sig"}
    return orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)


def signature(credential_hash: str, message: dict[str, Any]) -> str:
    """Return the HMAC-SHA256 (hex) of a message keyed with a device's credential digest."""
    return hmac.new(bytes.fromhex(credential_hash), canonical(message), sha256).hexdigest()


def sign(token: str, message: dict[str, Any]) -> dict[str, Any]:
    """Return message with its `sig`, as a device holding token computes it."""
    return {**message, "sig": signature(token_digest(token), message)}


def signature_valid(credential_hash: str | None, message: dict[str, Any]) -> bool:
    """Check a message's `sig` in constant time."""
    given = message.get("sig")
    if credential_hash is None or not isinstance(given, str):
        return False
    return hmac.compare_digest(signature(credential_hash, message), given)


def token_matches(credential_hash: str | None, token: str) -> bool:
    """Check a device's bearer token against its stored digest in constant time."""
    if credential_hash is None or not token.startswith(TOKEN_PREFIX):
        return False
    return hmac.compare_digest(credential_hash, token_digest(token))


def reference(device: Device, organisation_code: str) -> DeviceRef:
    """Return the cached form of a device."""
    return DeviceRef(
        id=device.id,
        organisation_id=device.organisation_id,
        organisation_code=organisation_code,
        kind=device.kind,
        external_id=device.external_id,
        credential_hash=device.credential_hash,
        active=device.status == DeviceStatus.ACTIVE.value,
    )


def _new_token() -> tuple[str, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_digest(token)


async def register_device(
    session: AsyncSession,
    *,
    organisation_id: str,
    kind: str,
    external_id: str,
    name: str,
    lat: float | None = None,
    lon: float | None = None,
    configuration: dict[str, Any] | None = None,
    firmware: str | None = None,
) -> tuple[Device, str]:
    """Register a device; return it with its secret token, which is shown only this once."""
    if kind_named(kind) is None:
        raise DeviceError(f"등록되지 않은 장치 종류입니다: {kind!r}")
    if not topic_safe(external_id):
        raise DeviceError("장치 ID는 영문, 숫자, '_', '.', ':', '-'로 된 80자 이내여야 합니다.")
    if (lat is None) != (lon is None):
        raise DeviceError("위치는 위도와 경도를 함께 주어야 합니다.")
    taken = await session.scalar(
        select(Device.id).where(
            Device.organisation_id == organisation_id, Device.external_id == external_id
        )
    )
    if taken is not None:
        raise DeviceConflict(f"장치 ID {external_id!r}는 이미 등록되어 있습니다.")
    token, digest = _new_token()
    device = Device(
        organisation_id=organisation_id,
        kind=kind,
        external_id=external_id,
        name=name,
        lat=lat,
        lon=lon,
        configuration=configuration or {},
        firmware=firmware,
        credential_hash=digest,
        status=DeviceStatus.ACTIVE.value,
    )
    session.add(device)
    await session.flush()
    return device, token


async def rotate_credential(session: AsyncSession, *, device: Device) -> str:
    """Give a device a new token; the old one stops working."""
    token, digest = _new_token()
    device.credential_hash = digest
    await session.flush()
    return token


async def load_reference(
    session: AsyncSession, *, organisation_code: str, external_id: str
) -> DeviceRef | None:
    """Find a device by its organisation's code and its own id, as named in MQTT topics."""
    row = (
        await session.execute(
            select(Device, Organisation.code)
            .join(Organisation, Organisation.id == Device.organisation_id)
            .where(Organisation.code == organisation_code, Device.external_id == external_id)
        )
    ).first()
    return None if row is None else reference(row[0], row[1])


async def load_reference_by_id(session: AsyncSession, *, device_id: str) -> DeviceRef | None:
    """Find a device by its id."""
    row = (
        await session.execute(
            select(Device, Organisation.code)
            .join(Organisation, Organisation.id == Device.organisation_id)
            .where(Device.id == device_id)
        )
    ).first()
    return None if row is None else reference(row[0], row[1])
