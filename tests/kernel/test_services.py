"""The service registry, driven by a test-only service with its own records and pages."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from civic.app import create_app
from civic.kernel import audit
from civic.kernel.access import get_owned, scoped
from civic.kernel.citizen_links import CitizenLinkError, issue_citizen_link, open_citizen_link
from civic.kernel.db import new_id, transaction
from civic.kernel.identity import Principal, Role
from civic.kernel.services import Service, ServiceContext, ServiceError, discover_services
from civic.kernel.web.deps import DbSession, audit_context, kernel_of, require
from civic.kernel.web.problems import Problem
from civic.settings import Settings
from tests.conftest import login
from tests.factories import PASSWORD, make_organisation, make_user


class CaseBase(DeclarativeBase):
    pass


class CaseRecord(CaseBase):
    """A record holding personal data, owned by one organisation."""

    __tablename__ = "test_case_records"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(String(32))
    resident_phone: Mapped[str] = mapped_column(String(40))


class CaseRead(BaseModel):
    id: str
    resident_phone: str


class CaseSettings(BaseModel):
    greeting: str = "안녕하세요"


api = APIRouter()
Clerk = Annotated[Principal, Depends(require("casebook", Role.CLERK))]


@api.get("/records")
async def list_records(session: DbSession, principal: Clerk) -> list[str]:
    stmt = scoped(select(CaseRecord.id), CaseRecord.organisation_id, principal)
    return list((await session.scalars(stmt)).all())


@api.get("/records/{record_id}")
async def read_record(
    request: Request, session: DbSession, principal: Clerk, record_id: str
) -> CaseRead:
    record = await get_owned(session, CaseRecord, record_id, principal=principal)
    if record is None:
        raise Problem(404, "no such record")
    await audit.record_personal_read(
        session,
        principal=principal,
        subject_type="case",
        subject_id=record.id,
        fields=["resident_phone"],
        context=audit_context(request),
    )
    return CaseRead(id=record.id, resident_phone=record.resident_phone)


@api.get("/public/{record_id}")
async def citizen_view(
    request: Request, session: DbSession, record_id: str, token: str
) -> CaseRead:
    try:
        principal = await open_citizen_link(
            session,
            secret=kernel_of(request).secret,
            token=token,
            purpose="status",
            subject_type="case",
            subject_id=record_id,
        )
    except CitizenLinkError as exc:
        raise Problem(403, str(exc)) from exc
    record = await session.get(CaseRecord, record_id)
    assert record is not None and record.organisation_id == principal.organisation_id
    return CaseRead(id=record.id, resident_phone=record.resident_phone)


events: list[str] = []


async def setup(context: ServiceContext) -> None:
    assert isinstance(context.settings, CaseSettings)
    events.append(f"setup:{context.settings.greeting}")
    async with context.kernel.engine.begin() as connection:
        await connection.run_sync(CaseBase.metadata.create_all)


async def teardown(context: ServiceContext) -> None:
    events.append("teardown")


CASEBOOK = Service(
    name="casebook",
    title="민원 사례철",
    description="시험용 서비스",
    api=api,
    roles=frozenset({Role.CLERK}),
    settings_model=CaseSettings,
    setup=setup,
    teardown=teardown,
)


@pytest.fixture
async def casebook_app(settings: Settings) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(update={"services": {"casebook": {"greeting": "반갑습니다"}}})
    application = create_app(settings, services=[CASEBOOK])
    async with application.router.lifespan_context(application):
        yield application
        async with application.state.kernel.engine.begin() as connection:
            await connection.run_sync(CaseBase.metadata.drop_all)


@pytest.fixture
async def casebook(casebook_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=casebook_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def add_record(app: FastAPI, organisation_id: str) -> str:
    async with transaction(app.state.kernel.sessions) as session:
        record = CaseRecord(organisation_id=organisation_id, resident_phone="010-9876-5432")
        session.add(record)
        await session.flush()
        return record.id


async def test_setup_gets_validated_settings_and_teardown_runs(settings: Settings) -> None:
    events.clear()
    settings = settings.model_copy(update={"services": {"casebook": {"greeting": "반갑습니다"}}})
    application = create_app(settings, services=[CASEBOOK])
    async with application.router.lifespan_context(application):
        assert events == ["setup:반갑습니다"]
    assert events == ["setup:반갑습니다", "teardown"]


async def test_a_failing_setup_stops_startup_naming_the_service(settings: Settings) -> None:
    async def broken(context: ServiceContext) -> None:
        raise RuntimeError("MQTT broker refused the connection")

    application = create_app(
        settings, services=[Service(name="hydrants", title="소화전", setup=broken)]
    )
    with pytest.raises(ServiceError, match="'hydrants'.*MQTT broker refused"):
        async with application.router.lifespan_context(application):
            pass


async def test_bad_service_settings_stop_startup(settings: Settings) -> None:
    settings = settings.model_copy(update={"services": {"casebook": {"greeting": ["not", "text"]}}})
    application = create_app(settings, services=[CASEBOOK])
    with pytest.raises(ServiceError, match="'casebook'"):
        async with application.router.lifespan_context(application):
            pass


def test_names_must_be_slugs_and_unique(settings: Settings) -> None:
    with pytest.raises(ServiceError):
        Service(name="Bad Name", title="x")
    with pytest.raises(ServiceError, match="two services"):
        create_app(
            settings, services=[Service(name="twin", title="a"), Service(name="twin", title="b")]
        )


def test_services_are_discovered_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    class Point:
        name = "casebook"

        def load(self) -> Service:
            return CASEBOOK

    class NotAService(Point):
        name = "junk"

        def load(self) -> object:
            return object()

    monkeypatch.setattr("civic.kernel.services.entry_points", lambda group: [Point()])
    assert discover_services() == [CASEBOOK]
    monkeypatch.setattr("civic.kernel.services.entry_points", lambda group: [NotAService()])
    with pytest.raises(ServiceError, match="junk"):
        discover_services()


async def test_home_lists_a_service_only_for_its_roles(
    casebook_app: FastAPI, casebook: httpx.AsyncClient
) -> None:
    org = await make_organisation(casebook_app)
    clerk = await make_user(casebook_app, organisation=org, roles={"casebook": [Role.CLERK]})
    crew = await make_user(casebook_app, organisation=org, roles={"smart119": [Role.CREW]})
    await login(casebook, clerk.username, PASSWORD)
    assert "민원 사례철" in (await casebook.get("/")).text
    casebook.cookies.clear()
    await login(casebook, crew.username, PASSWORD)
    assert "민원 사례철" not in (await casebook.get("/")).text


async def test_a_clerk_cannot_read_another_districts_records(
    casebook_app: FastAPI, casebook: httpx.AsyncClient
) -> None:
    yangcheon = await make_organisation(casebook_app, name="양천구청")
    jeju = await make_organisation(casebook_app, name="제주시청")
    ours = await add_record(casebook_app, yangcheon.id)
    theirs = await add_record(casebook_app, jeju.id)
    clerk = await make_user(casebook_app, organisation=yangcheon, roles={"casebook": [Role.CLERK]})
    await login(casebook, clerk.username, PASSWORD)

    assert (await casebook.get("/api/casebook/records")).json() == [ours]
    own = await casebook.get(f"/api/casebook/records/{ours}")
    assert own.status_code == 200 and own.json()["resident_phone"] == "010-9876-5432"
    other = await casebook.get(f"/api/casebook/records/{theirs}")
    assert other.status_code == 404  # not 403: another agency's records do not even exist here

    async with transaction(casebook_app.state.kernel.sessions) as session:
        reads = (
            await session.scalars(
                select(audit.AuditEntry).where(audit.AuditEntry.subject_type == "case")
            )
        ).all()
    assert [(r.actor, r.subject_id, r.detail) for r in reads] == [
        (clerk.username, ours, {"fields": ["resident_phone"]})
    ]


async def test_roles_are_checked_on_every_route(
    casebook_app: FastAPI, casebook: httpx.AsyncClient
) -> None:
    org = await make_organisation(casebook_app)
    crew = await make_user(casebook_app, organisation=org, roles={"smart119": [Role.CREW]})
    assert (await casebook.get("/api/casebook/records")).status_code == 401
    await login(casebook, crew.username, PASSWORD)
    refused = await casebook.get("/api/casebook/records")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "clerk" in refused.json()["detail"]


async def test_citizen_link_opens_one_record_until_it_expires(
    casebook_app: FastAPI, casebook: httpx.AsyncClient
) -> None:
    org = await make_organisation(casebook_app)
    mine = await add_record(casebook_app, org.id)
    other = await add_record(casebook_app, org.id)
    secret = casebook_app.state.kernel.secret
    async with transaction(casebook_app.state.kernel.sessions) as session:
        token = await issue_citizen_link(
            session,
            secret=secret,
            organisation_id=org.id,
            purpose="status",
            subject_type="case",
            subject_id=mine,
            valid_for=timedelta(hours=1),
        )
        expired = await issue_citizen_link(
            session,
            secret=secret,
            organisation_id=org.id,
            purpose="status",
            subject_type="case",
            subject_id=mine,
            valid_for=timedelta(seconds=-1),
        )
    assert (
        await casebook.get(f"/api/casebook/public/{mine}", params={"token": token})
    ).status_code == 200
    wrong_record = await casebook.get(f"/api/casebook/public/{other}", params={"token": token})
    assert wrong_record.status_code == 403
    assert "이 링크로는 볼 수 없는 기록" in wrong_record.json()["detail"]
    late = await casebook.get(f"/api/casebook/public/{mine}", params={"token": expired})
    assert late.status_code == 403 and "만료" in late.json()["detail"]
    forged = await casebook.get(f"/api/casebook/public/{mine}", params={"token": token[:-2] + "xx"})
    assert forged.status_code == 403
    # A link is not a login: it opens nothing that needs a role.
    assert (await casebook.get("/api/casebook/records", params={"token": token})).status_code == 401


async def test_a_wrong_purpose_or_revoked_link_opens_nothing(casebook_app: FastAPI) -> None:
    org = await make_organisation(casebook_app)
    record = await add_record(casebook_app, org.id)
    secret = casebook_app.state.kernel.secret
    sessions = casebook_app.state.kernel.sessions
    async with transaction(sessions) as session:
        token = await issue_citizen_link(
            session,
            secret=secret,
            organisation_id=org.id,
            purpose="status",
            subject_type="case",
            subject_id=record,
            valid_for=timedelta(hours=1),
        )
    async with transaction(sessions) as session:
        with pytest.raises(CitizenLinkError):
            await open_citizen_link(
                session,
                secret=secret,
                token=token,
                purpose="upload",
                subject_type="case",
                subject_id=record,
            )
        with pytest.raises(CitizenLinkError):
            await open_citizen_link(
                session,
                secret="another-secret",
                token=token,
                purpose="status",
                subject_type="case",
                subject_id=record,
            )
        principal = await open_citizen_link(
            session,
            secret=secret,
            token=token,
            purpose="status",
            subject_type="case",
            subject_id=record,
        )
        assert principal.via == "link" and principal.link is not None
        from civic.kernel.citizen_links import revoke_citizen_link

        await revoke_citizen_link(session, link_id=principal.link.link_id)
    async with transaction(sessions) as session:
        with pytest.raises(CitizenLinkError, match="취소"):
            await open_citizen_link(
                session,
                secret=secret,
                token=token,
                purpose="status",
                subject_type="case",
                subject_id=record,
            )
