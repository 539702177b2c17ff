"""Incidents on the live socket: who may follow them, and what each event pushes."""

from __future__ import annotations

from typing import Any

from civic.kernel.incidents.events import (
    IncidentClosed,
    IncidentCreated,
    IncidentDispatched,
    IncidentEvent,
    IncidentUpdated,
)
from civic.kernel.incidents.service import READERS, SERVICE, STATUS_LINK_PURPOSE
from civic.kernel.realtime import realtime_of
from civic.kernel.runtime import Kernel

BOARD_TOPIC = "incidents"
INCIDENT_TOPIC = "incident:"


def topic_of(incident_id: str) -> str:
    """Return the topic of one incident."""
    return INCIDENT_TOPIC + incident_id


def live_messages(event: IncidentEvent) -> dict[str, dict[str, Any]]:
    """Return what an incident event pushes: the board row, and the incident's own status."""
    occurred_at = event.occurred_at.isoformat()
    incident: dict[str, Any] = {
        "id": event.incident_id,
        "number": event.number,
        "type": event.type,
        "subtype": event.subtype,
        "status": event.status,
        "latitude": event.latitude,
        "longitude": event.longitude,
        "address": event.address,
        "occurred_at": occurred_at,
    }
    if isinstance(event, IncidentCreated):
        incident["created_at"] = occurred_at
    board = {"event": event.name, "incident": incident}
    # A citizen's link follows this topic too: status only, never the place or notes.
    status = {
        "event": event.name,
        "incident_id": event.incident_id,
        "number": event.number,
        "type": event.type,
        "status": event.status,
        "at": occurred_at,
    }
    return {BOARD_TOPIC: board, topic_of(event.incident_id): status}


class IncidentsPart:
    """Kernel part that puts incidents on the live socket."""

    name = "incidents"

    async def start(self, kernel: Kernel) -> None:
        """Register the incident topics and route incident events to them."""
        hub = realtime_of(kernel)
        hub.register_topic(BOARD_TOPIC, service=SERVICE, roles=READERS)
        hub.register_topic(INCIDENT_TOPIC, service=SERVICE, roles=READERS)
        hub.register_link_topic(STATUS_LINK_PURPOSE, INCIDENT_TOPIC + "{subject_id}")
        for event_type in (IncidentCreated, IncidentUpdated, IncidentDispatched, IncidentClosed):
            hub.route(event_type, live_messages)

    async def stop(self) -> None:
        """Nothing runs in the background."""
