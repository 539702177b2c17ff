"""Every kernel table, imported in one place so that metadata is complete."""

from civic.kernel.audit import AuditEntry
from civic.kernel.bus import DeadLetter, OutboxEvent, ProcessedEvent
from civic.kernel.db import Base
from civic.kernel.identity import ApiToken, CitizenLink, Organisation, RoleGrant, User
from civic.kernel.sessions import BrowserSession, LoginAttempt

metadata = Base.metadata

__all__ = [
    "ApiToken",
    "AuditEntry",
    "BrowserSession",
    "DeadLetter",
    "OutboxEvent",
    "ProcessedEvent",
    "CitizenLink",
    "LoginAttempt",
    "Organisation",
    "RoleGrant",
    "User",
    "metadata",
]
