import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from civic.kernel import audit
from civic.kernel.db import transaction
from civic.kernel.identity import Principal, Role
from tests.conftest import login
from tests.factories import PASSWORD, make_organisation, make_user


async def test_the_log_refuses_updates_and_deletes(app: FastAPI) -> None:
    sessions = app.state.kernel.sessions
    principal = Principal(user_id=None, name="tester", organisation_id="org-x")
    async with transaction(sessions) as session:
        entry = await audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.UPDATE,
            subject_type="hydrant",
            subject_id="H-1",
            detail={"pressure": [300, 250]},
        )
    for statement in (
        update(audit.AuditEntry)
        .where(audit.AuditEntry.id == entry.id)
        .values(actor="someone else"),
        delete(audit.AuditEntry).where(audit.AuditEntry.id == entry.id),
    ):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            async with transaction(sessions) as session:
                await session.execute(statement)


async def test_personal_reads_through_the_api_are_logged(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    admin = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    resident = await make_user(
        app, organisation=org, roles={"formhelper": [Role.CITIZEN]}, phone="010-5555-1234"
    )
    await login(client, admin.username, PASSWORD)
    listed = await client.get("/api/identity/users")
    assert "phone" not in listed.json()[0]
    read = await client.get(f"/api/identity/users/{resident.id}")
    assert read.json()["phone"] == "010-5555-1234"
    async with transaction(app.state.kernel.sessions) as session:
        entries = await audit.search(session, organisation_id=org.id, subject=f"user:{resident.id}")
    assert [(e.actor, e.action, e.detail) for e in entries] == [
        (admin.username, "read", {"fields": ["phone"]})
    ]


async def test_admin_of_one_agency_cannot_read_another_agencys_people(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    fire = await make_organisation(app, name="경남소방본부")
    district = await make_organisation(app, name="양천구청")
    admin = await make_user(app, organisation=fire, roles={"*": [Role.ADMIN]})
    outsider = await make_user(app, organisation=district, roles={"schoolzone": [Role.OFFICER]})
    await login(client, admin.username, PASSWORD)
    assert (await client.get(f"/api/identity/users/{outsider.id}")).status_code == 404
    names = {u["username"] for u in (await client.get("/api/identity/users")).json()}
    assert admin.username in names and outsider.username not in names


async def test_audit_page_searches_by_person_subject_and_time(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    admin = await make_user(app, organisation=org, roles={"*": [Role.ADMIN]})
    clerk = await make_user(app, organisation=org, roles={"formhelper": [Role.CLERK]})
    await login(client, clerk.username, "wrong")  # an entry for the clerk
    await login(client, admin.username, PASSWORD)
    page = await client.get(
        "/admin/audit", params={"actor": clerk.username}, headers={"accept": "text/html"}
    )
    assert page.status_code == 200
    assert "login_failed" in page.text and "<form" in page.text
    rows = await client.get(
        "/admin/audit",
        params={"subject": f"user:{admin.id}", "since": "2000-01-01T00:00"},
        headers={"hx-request": "true"},
    )
    assert "<form" not in rows.text and "login" in rows.text and "login_failed" not in rows.text
    future = await client.get("/admin/audit", params={"since": "2999-01-01T00:00"})
    assert "조건에 맞는 기록이 없습니다" in future.text
    bad = await client.get(
        "/admin/audit", params={"since": "yesterday"}, headers={"accept": "text/html"}
    )
    assert bad.status_code == 422 and "시각 형식" in bad.text


async def test_audit_page_is_for_admins_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_organisation(app)
    clerk = await make_user(app, organisation=org, roles={"formhelper": [Role.CLERK]})
    await login(client, clerk.username, PASSWORD)
    refused = await client.get("/admin/audit", headers={"accept": "text/html"})
    assert refused.status_code == 403
    assert "권한이 없습니다" in refused.text
    client.cookies.clear()
    anonymous = await client.get("/admin/audit", headers={"accept": "text/html"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/admin/audit"
