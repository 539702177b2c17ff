"""Durable events of tracking, published through the outbox."""

from __future__ import annotations

from datetime import datetime

from civic.kernel.bus import Event


class SignalEvent(Event):
    """A change in whether a tracked subject is heard from; ordered per subject."""

    subject_id: str
    kind: str
    external_id: str
    display_name: str
    personal: bool
    lat: float | None
    lon: float | None

    def key(self) -> str:
        """Order the events of one subject."""
        return self.subject_id


class SignalLost(SignalEvent):
    """A subject has been silent for longer than its kind allows; lat/lon: last known."""

    name = "tracking.signal_lost"
    last_received_at: datetime
    silent_seconds: float


class SignalRestored(SignalEvent):
    """A subject whose signal was lost reports again; lat/lon: where it is now."""

    name = "tracking.signal_restored"
    lost_at: datetime
    lost_for_seconds: float
