"""Devices: registry, telemetry ingest (MQTT/HTTP), time series, alarm rules and commands.

Services register their kinds with `register_kind` and reach the running part with
`devices_of(kernel)`; tables live in `civic.kernel.devices.models`.
"""

from civic.kernel.devices.kinds import DeviceKind, Telemetry, kind_named, register_kind
from civic.kernel.devices.part import DevicesPart, devices_of
from civic.kernel.devices.registry import DeviceError, register_device, sign

__all__ = [
    "DeviceError",
    "DeviceKind",
    "DevicesPart",
    "Telemetry",
    "devices_of",
    "kind_named",
    "register_device",
    "register_kind",
    "sign",
]
