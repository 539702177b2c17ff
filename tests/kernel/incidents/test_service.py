"""The incident service functions, called the way services call them."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from civic.kernel.bus import OutboxEvent
from civic.kernel.db import transaction
from civic.kernel.identity import Principal, Role, principal_for
from civic.kernel.incidents import (
    Incident,
    IncidentError,
    IncidentInput,
    IncidentType,
    create_incident,
    read_reporter,
)
from tests.factories import make_organisation, make_user

CALL = IncidentInput(
    type=IncidentType.RESCUE,
    subtype="승강기 갇힘",
    address="서울 양천구 신정동 1",
    reporter_name="박신고",
    reporter_phone="010-1111-2222",
)


async def _principal(app: FastAPI, roles: dict[str, list[Role]]) -> Principal:
    organisation = await make_organisation(app)
    user = await make_user(app, organisation=organisation, roles=roles)
    return principal_for(user)


async def test_concurrent_retries_with_one_key_make_one_incident(app: FastAPI) -> None:
    principal = await _principal(app, {"incidents": [Role.DISPATCHER]})

    async def attempt() -> tuple[str, bool]:
        async with transaction(app.state.kernel.sessions) as session:
            incident, created = await create_incident(
                session, principal=principal, given=CALL, idempotency_key="retry-key-0001"
            )
            return incident.id, created

    results = await asyncio.gather(attempt(), attempt())
    assert len({incident_id for incident_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, True]
    async with app.state.kernel.sessions() as session:
        rows = (
            await session.scalars(
                select(Incident).where(Incident.organisation_id == principal.organisation_id)
            )
        ).all()
    assert len(rows) == 1


async def test_events_carry_no_reporter_contact(app: FastAPI) -> None:
    principal = await _principal(app, {"incidents": [Role.OPERATOR]})
    async with transaction(app.state.kernel.sessions) as session:
        incident, _ = await create_incident(session, principal=principal, given=CALL)
    async with app.state.kernel.sessions() as session:
        event = await session.scalar(select(OutboxEvent).where(OutboxEvent.key == incident.id))
    assert event is not None and event.name == "incidents.created"
    assert event.payload["organisation_id"] == principal.organisation_id
    assert event.payload["subtype"] == "승강기 갇힘"
    assert "010-1111-2222" not in str(event.payload) and "박신고" not in str(event.payload)


async def test_only_dispatchers_and_operators_read_the_reporter(app: FastAPI) -> None:
    dispatcher = await _principal(app, {"incidents": [Role.DISPATCHER]})
    async with transaction(app.state.kernel.sessions) as session:
        incident, _ = await create_incident(session, principal=dispatcher, given=CALL)
    crew = Principal(
        user_id=None,
        name="crew",
        organisation_id=dispatcher.organisation_id,
        grants=frozenset({("incidents", "crew")}),
    )
    async with transaction(app.state.kernel.sessions) as session:
        with pytest.raises(IncidentError) as refused:
            await read_reporter(session, principal=crew, incident_id=incident.id)
        assert refused.value.status == 403
        assert await read_reporter(session, principal=dispatcher, incident_id=incident.id) == (
            "박신고",
            "010-1111-2222",
        )
