"""Request and response models of the incidents API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from civic.kernel.incidents.models import (
    Incident,
    IncidentStatus,
    IncidentType,
    UnitStatus,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True)]
# Strict: JSON true/false must not pass for 1.0/0.0 degrees.
Latitude = Annotated[float, Field(ge=-90, le=90, strict=True, description="WGS84 latitude.")]
Longitude = Annotated[float, Field(ge=-180, le=180, strict=True, description="WGS84 longitude.")]


class Location(BaseModel):
    """Where the incident is (both coordinates, so that a half place cannot be sent)."""

    model_config = ConfigDict(extra="forbid")

    latitude: Latitude
    longitude: Longitude


class IncidentCreate(BaseModel):
    """A new incident as a call-taker records it."""

    model_config = ConfigDict(extra="forbid")

    type: IncidentType = Field(description="fire, rescue, ems or other.")
    subtype: Annotated[Text | None, Field(max_length=60)] = None
    location: Location | None = None
    address: Annotated[Text | None, Field(max_length=300)] = None
    description: Annotated[Text, Field(max_length=10_000)] = ""
    reporter_name: Annotated[Text | None, Field(max_length=100)] = Field(
        default=None, description="Personal data: read back only through /reporter (audited)."
    )
    reporter_phone: Annotated[
        Text | None, Field(max_length=40, pattern=r"^\+?[0-9][0-9 \-]{2,38}$")
    ] = Field(default=None, description="Personal data: read back only through /reporter.")


class IncidentPatch(BaseModel):
    """Corrections to an open incident; only the fields given change (null clears a place)."""

    model_config = ConfigDict(extra="forbid")

    type: IncidentType | None = Field(default=None, description="null leaves the type as it is.")
    subtype: Annotated[Text | None, Field(max_length=60)] = None
    location: Location | None = None
    address: Annotated[Text | None, Field(max_length=300)] = None
    description: Annotated[Text | None, Field(max_length=10_000)] = Field(
        default=None, description="null leaves the description as it is."
    )

    def changes(self) -> dict[str, Any]:
        """Return the columns to change, from the fields that were given."""
        given = self.model_dump(exclude_unset=True)
        changes = {k: v for k, v in given.items() if k != "location"}
        for kept in ("type", "description"):
            if changes.get(kept, "") is None:
                del changes[kept]
        if "location" in given:
            place = given["location"] or {"latitude": None, "longitude": None}
            changes |= place
        return changes


class StatusChange(BaseModel):
    """Move an incident forward."""

    model_config = ConfigDict(extra="forbid")

    status: IncidentStatus
    note: Annotated[Text | None, Field(max_length=500)] = None


class NoteCreate(BaseModel):
    """A free-text note."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[Text, Field(min_length=1, max_length=10_000)]


class UnitLink(BaseModel):
    """A unit sent to the incident, or its new status there."""

    model_config = ConfigDict(extra="forbid")

    unit_id: Annotated[Text, Field(min_length=1, max_length=64)]
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    status: UnitStatus = UnitStatus.ASSIGNED


class MediaLink(BaseModel):
    """A media item of the media module to reference."""

    model_config = ConfigDict(extra="forbid")

    media_id: Annotated[Text, Field(min_length=1, max_length=64)]
    caption: Annotated[Text | None, Field(max_length=200)] = None


class TimelineEntryRead(BaseModel):
    """One step of the status timeline."""

    model_config = ConfigDict(from_attributes=True)

    status: IncidentStatus
    at: datetime
    actor: str
    note: str | None


class UnitRead(BaseModel):
    """A linked unit."""

    model_config = ConfigDict(from_attributes=True)

    unit_id: str
    name: str
    status: UnitStatus
    updated_at: datetime


class NoteRead(BaseModel):
    """A note."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    author: str
    text: str
    created_at: datetime


class MediaRead(BaseModel):
    """A media reference."""

    model_config = ConfigDict(from_attributes=True)

    media_id: str
    caption: str | None
    added_by: str
    created_at: datetime


class IncidentSummary(BaseModel):
    """An incident in a list: no reporter contact."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    number: str
    type: IncidentType
    subtype: str | None
    status: IncidentStatus
    latitude: float | None
    longitude: float | None
    address: str | None
    created_at: datetime
    updated_at: datetime


class IncidentRead(IncidentSummary):
    """An incident with its timeline, units, notes and media; no reporter contact."""

    description: str
    created_by: str
    closed_at: datetime | None
    has_reporter_contact: bool
    timeline: list[TimelineEntryRead]
    units: list[UnitRead]
    notes: list[NoteRead]
    media: list[MediaRead]

    @classmethod
    def of(cls, incident: Incident) -> IncidentRead:
        """Describe an incident, leaving its reporter's contact out."""
        summary = IncidentSummary.model_validate(incident).model_dump()
        return cls(
            **summary,
            description=incident.description,
            created_by=incident.created_by,
            closed_at=incident.closed_at,
            has_reporter_contact=bool(incident.reporter_name or incident.reporter_phone),
            timeline=[TimelineEntryRead.model_validate(e) for e in incident.timeline],
            units=[UnitRead.model_validate(u) for u in incident.units],
            notes=[NoteRead.model_validate(n) for n in incident.notes],
            media=[MediaRead.model_validate(m) for m in incident.media],
        )


class IncidentList(BaseModel):
    """A page of incidents."""

    items: list[IncidentSummary]
    total: int = Field(description="How many incidents match the filters.")


class ReporterContact(BaseModel):
    """The person who reported an incident (personal data; this read was audited)."""

    name: str | None
    phone: str | None


class StatusLink(BaseModel):
    """A link that lets a citizen follow one incident's status."""

    token: str
    url: str
    expires_in_hours: float
