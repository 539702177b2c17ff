"""The dead-letter page: administrators inspect failed events and deliver them again."""

import asyncio
import re

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.bus import DeadLetter, Event, ProcessedEvent, RetryPolicy, publish
from civic.kernel.db import new_id, transaction
from civic.kernel.identity import Organisation, Role
from civic.kernel.relay import bus_of
from tests.conftest import csrf_from, login
from tests.factories import PASSWORD, make_organisation, make_user


class PermitIssued(Event):
    name = "testbusa.permit_issued"
    permit: str

    def key(self) -> str:
        return self.permit


async def dead_letter_of(app: FastAPI, event: PermitIssued) -> DeadLetter | None:
    async with app.state.kernel.sessions() as session:
        letter: DeadLetter | None = await session.scalar(
            select(DeadLetter)
            .where(DeadLetter.event_id == event.event_id)
            .order_by(DeadLetter.id.desc())
        )
        return letter


async def fail_one(app: FastAPI, organisation: Organisation, subscriber: str) -> tuple:
    """Subscribe a handler that fails until told otherwise; dead-letter one event to it."""
    state = {"broken": True, "handled": []}

    async def archive(session: AsyncSession, event: PermitIssued) -> None:
        if state["broken"]:
            raise PermissionError("the archive share is read-only")
        state["handled"].append(event.event_id)

    bus = bus_of(app.state.kernel)
    bus.retry = RetryPolicy(attempts=2, first_delay=0.001)
    bus.subscribe(PermitIssued, handler=archive, name=subscriber)
    event = PermitIssued(permit=f"PM-{new_id()[:6]}", organisation_id=organisation.id)
    async with transaction(app.state.kernel.sessions) as session:
        await publish(session, event)
    async with asyncio.timeout(30):
        while (letter := await dead_letter_of(app, event)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return event, letter, state


async def test_an_admin_sees_a_dead_letter_and_replays_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    organisation = await make_organisation(app)
    admin = await make_user(app, organisation=organisation, roles={"*": [Role.ADMIN]})
    event, letter, state = await fail_one(app, organisation, f"testbusa.archive.{new_id()[:6]}")
    assert letter.attempts == 2 and letter.organisation_id == organisation.id
    await login(client, admin.username, PASSWORD)

    page = await client.get("/admin/events", headers={"accept": "text/html"})
    assert page.status_code == 200
    row = page.text[page.text.index(f'id="dead-letter-{letter.id}"') :]
    assert letter.subscriber in row and "testbusa.permit_issued" in row
    assert "read-only" in row and event.permit in row
    assert re.search(r'id="outbox-backlog">\d+<', page.text)

    state["broken"] = False
    token = await csrf_from(client, "/admin/events")
    replayed = await client.post(
        f"/admin/events/{letter.id}/replay",
        data={"csrf_token": token},
        headers={"accept": "text/html"},
    )
    assert replayed.status_code == 303
    assert replayed.headers["location"] == f"/admin/events?replayed={letter.id}&ok=true"
    assert state["handled"] == [event.event_id]
    async with app.state.kernel.sessions() as session:
        again = await session.get(DeadLetter, letter.id)
        mark = await session.scalar(
            select(ProcessedEvent.id).where(
                ProcessedEvent.subscriber == letter.subscriber,
                ProcessedEvent.event_id == event.event_id,
            )
        )
    assert again is not None and again.replayed_at is not None and mark is not None
    shown = await client.get(replayed.headers["location"], headers={"accept": "text/html"})
    assert "다시 보낸 이벤트가 처리되었습니다." in shown.text


async def test_a_replay_that_fails_again_leaves_a_new_dead_letter(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    organisation = await make_organisation(app)
    admin = await make_user(app, organisation=organisation, roles={"*": [Role.ADMIN]})
    event, letter, _ = await fail_one(app, organisation, f"testbusa.again.{new_id()[:6]}")
    await login(client, admin.username, PASSWORD)
    token = await csrf_from(client, "/admin/events")
    replayed = await client.post(
        f"/admin/events/{letter.id}/replay",
        data={"csrf_token": token},
        headers={"accept": "text/html"},
    )
    assert replayed.headers["location"].endswith("ok=false")
    newest = await dead_letter_of(app, event)
    assert newest is not None and newest.id != letter.id and newest.replayed_at is None
    shown = await client.get(replayed.headers["location"], headers={"accept": "text/html"})
    assert "다시 보냈지만 또 실패했습니다." in shown.text


async def test_a_replay_needs_the_csrf_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    organisation = await make_organisation(app)
    admin = await make_user(app, organisation=organisation, roles={"*": [Role.ADMIN]})
    _, letter, state = await fail_one(app, organisation, f"testbusa.csrf.{new_id()[:6]}")
    await login(client, admin.username, PASSWORD)
    state["broken"] = False
    refused = await client.post(f"/admin/events/{letter.id}/replay", data={})
    assert refused.status_code == 403
    assert state["handled"] == []


async def test_an_agency_sees_and_replays_only_its_own_dead_letters(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    mine, theirs = await make_organisation(app), await make_organisation(app, name="소방본부")
    admin = await make_user(app, organisation=mine, roles={"*": [Role.ADMIN]})
    _, letter, state = await fail_one(app, theirs, f"testbusa.theirs.{new_id()[:6]}")
    await login(client, admin.username, PASSWORD)
    page = await client.get("/admin/events", headers={"accept": "text/html"})
    assert f'id="dead-letter-{letter.id}"' not in page.text
    state["broken"] = False
    token = await csrf_from(client, "/admin/events")
    refused = await client.post(
        f"/admin/events/{letter.id}/replay",
        data={"csrf_token": token},
        headers={"accept": "application/json"},
    )
    assert refused.status_code == 404
    assert state["handled"] == []


async def test_the_page_is_for_admins_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    organisation = await make_organisation(app)
    clerk = await make_user(app, organisation=organisation, roles={"incidents": [Role.CLERK]})
    anonymous = await client.get("/admin/events", headers={"accept": "text/html"})
    assert anonymous.status_code in (303, 401)
    await login(client, clerk.username, PASSWORD)
    refused = await client.get("/admin/events", headers={"accept": "text/html"})
    assert refused.status_code == 403
    home = await client.get("/", headers={"accept": "text/html"})
    assert 'href="/admin/events"' not in home.text


async def test_the_home_page_links_admins_to_the_events(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    organisation = await make_organisation(app)
    admin = await make_user(app, organisation=organisation, roles={"*": [Role.ADMIN]})
    await login(client, admin.username, PASSWORD)
    home = await client.get("/", headers={"accept": "text/html"})
    assert 'href="/admin/events"' in home.text
