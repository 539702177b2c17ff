"""Every kernel table, imported in one place so that metadata is complete."""

from civic.kernel.audit import AuditEntry
from civic.kernel.bus import DeadLetter, OutboxEvent, ProcessedEvent
from civic.kernel.db import Base
from civic.kernel.devices.models import (
    Alarm,
    AlarmRule,
    Device,
    DeviceCommand,
    TelemetryRollup,
    TelemetrySample,
)
from civic.kernel.identity import ApiToken, CitizenLink, Organisation, RoleGrant, User
from civic.kernel.incidents.models import (
    Incident,
    IncidentCounter,
    IncidentMedia,
    IncidentNote,
    IncidentStatusEntry,
    IncidentUnit,
)
from civic.kernel.media.models import EvidenceMedia, EvidenceRecord, MediaItem
from civic.kernel.notify.models import (
    DeliveryAttempt,
    DevInboxMessage,
    NotificationDelivery,
    NotificationMessage,
    NotifyPreference,
    PushSubscription,
)
from civic.kernel.sessions import BrowserSession, LoginAttempt
from civic.kernel.tracking.models import TrackedPosition, TrackedSubject
from civic.kernel.workflow.models import WorkflowHistory, WorkflowInstance

metadata = Base.metadata

__all__ = [
    "Alarm",
    "AlarmRule",
    "Device",
    "DeviceCommand",
    "TelemetryRollup",
    "TelemetrySample",
    "ApiToken",
    "AuditEntry",
    "BrowserSession",
    "DeadLetter",
    "EvidenceMedia",
    "Incident",
    "IncidentCounter",
    "IncidentMedia",
    "IncidentNote",
    "IncidentStatusEntry",
    "IncidentUnit",
    "EvidenceRecord",
    "MediaItem",
    "DeliveryAttempt",
    "DevInboxMessage",
    "NotificationDelivery",
    "NotificationMessage",
    "NotifyPreference",
    "PushSubscription",
    "OutboxEvent",
    "ProcessedEvent",
    "CitizenLink",
    "LoginAttempt",
    "Organisation",
    "RoleGrant",
    "TrackedPosition",
    "TrackedSubject",
    "User",
    "WorkflowHistory",
    "WorkflowInstance",
    "metadata",
]
