"""Events of devices: alarms raised, cleared, acknowledged and escalated; commands finished."""

from __future__ import annotations

from civic.kernel.bus import Event


class DeviceEvent(Event):
    """An event about one device; delivered in order per device."""

    device_id: str

    def key(self) -> str:
        """Order events per device."""
        return f"device:{self.device_id}"


class AlarmEvent(DeviceEvent):
    """An event about one alarm."""

    alarm_id: str
    rule_id: str
    severity: str


class AlarmRaised(AlarmEvent):
    """A rule's condition held: the alarm is active."""

    name = "devices.alarm_raised"
    kind: str
    metric: str | None
    value: float | None
    message: str


class AlarmCleared(AlarmEvent):
    """The condition ended: the alarm is cleared."""

    name = "devices.alarm_cleared"


class AlarmAcknowledged(AlarmEvent):
    """A person acknowledged the alarm."""

    name = "devices.alarm_acknowledged"
    user_id: str | None


class AlarmEscalated(AlarmEvent):
    """Nobody acknowledged the alarm in time; level counts the escalations."""

    name = "devices.alarm_escalated"
    level: int


class CommandFinished(DeviceEvent):
    """A command to a device ended: delivered, failed or expired."""

    name = "devices.command_finished"
    command_id: str
    command: str
    status: str


class CommandQueued(DeviceEvent):
    """A command to a device was recorded; it is sent over MQTT after commit."""

    name = "devices.command_queued"
    command_id: str
    command: str
