"""The shared incident: type, place, status timeline, reporter, units, notes and media.

Many services work on one emergency; each keeps its own rows and links them to the incident
by `incident_id` (a foreign key to `incidents.id`), reading it through `get_incident`, which
scopes it to the principal's organisation. Changes go through the functions of `service`, which
publish `incidents.created|updated|dispatched|closed`; the live board follows them over the
realtime hub (`incidents` and `incident:<id>` topics).
"""

from civic.kernel.incidents.events import (
    IncidentClosed,
    IncidentCreated,
    IncidentDispatched,
    IncidentEvent,
    IncidentUpdated,
)
from civic.kernel.incidents.live import IncidentsPart
from civic.kernel.incidents.models import (
    Incident,
    IncidentCounter,
    IncidentMedia,
    IncidentNote,
    IncidentStatus,
    IncidentStatusEntry,
    IncidentType,
    IncidentUnit,
    UnitStatus,
)
from civic.kernel.incidents.service import (
    IncidentError,
    IncidentInput,
    add_note,
    attach_media,
    change_status,
    create_incident,
    get_incident,
    issue_status_link,
    link_unit,
    list_incidents,
    read_reporter,
    update_details,
)

__all__ = [
    "Incident",
    "IncidentClosed",
    "IncidentCounter",
    "IncidentCreated",
    "IncidentDispatched",
    "IncidentError",
    "IncidentEvent",
    "IncidentInput",
    "IncidentMedia",
    "IncidentNote",
    "IncidentStatus",
    "IncidentStatusEntry",
    "IncidentType",
    "IncidentUnit",
    "IncidentUpdated",
    "IncidentsPart",
    "UnitStatus",
    "add_note",
    "attach_media",
    "change_status",
    "create_incident",
    "get_incident",
    "issue_status_link",
    "link_unit",
    "list_incidents",
    "read_reporter",
    "update_details",
]
