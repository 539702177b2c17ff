"""Events of the shared incident; none carries the reporter's contact."""

from __future__ import annotations

from typing import Any, Self

from civic.kernel.bus import Event
from civic.kernel.incidents.models import Incident


class IncidentEvent(Event):
    """What every incident event says about the incident, ordered per incident."""

    incident_id: str
    number: str
    type: str
    subtype: str | None = None
    status: str
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None

    def key(self) -> str:
        """Events of one incident are delivered in order."""
        return self.incident_id

    @classmethod
    def of(cls, incident: Incident, **extra: Any) -> Self:
        """Describe incident as it is now."""
        return cls(
            organisation_id=incident.organisation_id,
            incident_id=incident.id,
            number=incident.number,
            type=incident.type,
            subtype=incident.subtype,
            status=incident.status,
            latitude=incident.latitude,
            longitude=incident.longitude,
            address=incident.address,
            **extra,
        )


class IncidentCreated(IncidentEvent):
    """An incident was received."""

    name = "incidents.created"


class IncidentUpdated(IncidentEvent):
    """An incident changed: its status, details, notes, units or media (see change)."""

    name = "incidents.updated"
    change: str


class IncidentDispatched(IncidentEvent):
    """A unit was sent to an incident (or the incident was marked dispatched)."""

    name = "incidents.dispatched"
    unit_id: str | None = None
    unit_name: str | None = None


class IncidentClosed(IncidentEvent):
    """An incident was closed."""

    name = "incidents.closed"
