"""Uploads over HTTP: real types, limits, de-duplication, thumbnails, rights and audited reads."""

import io
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import select

from civic.kernel.audit import AuditEntry
from civic.kernel.citizen_links import issue_citizen_link
from civic.kernel.db import transaction
from civic.kernel.identity import ALL_SERVICES, Role
from civic.kernel.media import MediaItem, append_evidence
from civic.kernel.settings import MediaSettings
from civic.settings import Settings
from tests.factories import make_organisation, make_user
from tests.kernel.media.files import ELF, MP4, PDF, bearer, local_store, png, running
from tests.waiting import eventually


def upload(name: str, data: bytes, content_type: str) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, content_type)}


@pytest.fixture
async def dispatcher(app: FastAPI) -> dict[str, str]:
    org = await make_organisation(app, name="강남소방서")
    user = await make_user(app, organisation=org, roles={"smart119": [Role.DISPATCHER]})
    return await bearer(app, user)


async def test_a_png_named_txt_is_stored_as_png_with_a_thumbnail(
    app: FastAPI, client: httpx.AsyncClient, dispatcher: dict[str, str]
) -> None:
    photo = png(800, 600)
    sent = await client.post(
        "/api/media", files=upload("report.txt", photo, "text/plain"), headers=dispatcher
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["content_type"] == "image/png" and body["size"] == len(photo)
    assert body["original_filename"] == "report.txt" and body["thumbnail_note"] is None

    content = await client.get(body["url"], headers=dispatcher)
    assert content.status_code == 200 and content.content == photo
    assert content.headers["content-type"] == "image/png"
    assert content.headers["x-content-type-options"] == "nosniff"
    thumb = await client.get(body["thumbnail_url"], headers=dispatcher)
    assert thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 240)

    info = await client.get(f"{body['url']}/info", headers=dispatcher)
    assert info.json()["sha256"] == body["sha256"]
    async with app.state.kernel.sessions() as session:
        reads = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.subject_type == "media", AuditEntry.subject_id == body["sha256"]
                )
            )
        ).all()
    assert [r.detail["fields"] for r in reads] == [["content"], ["thumbnail"]]


async def test_the_same_content_uploaded_twice_is_stored_once(
    app: FastAPI, client: httpx.AsyncClient, dispatcher: dict[str, str]
) -> None:
    photo = png(40, 40, (1, 2, 3))
    first = await client.post(
        "/api/media", files=upload("a.png", photo, "image/png"), headers=dispatcher
    )
    again = await client.post(
        "/api/media", files=upload("b.png", photo, "image/png"), headers=dispatcher
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["sha256"] == again.json()["sha256"]
    async with app.state.kernel.sessions() as session:
        rows = (
            await session.scalars(
                select(MediaItem).where(MediaItem.sha256 == first.json()["sha256"])
            )
        ).all()
    assert len(rows) == 1 and rows[0].original_filename == "a.png"
    store = local_store(app)
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert len(files) == 2  # the photo and its thumbnail


async def test_an_executable_claiming_to_be_a_jpeg_is_refused(
    client: httpx.AsyncClient, dispatcher: dict[str, str]
) -> None:
    refused = await client.post(
        "/api/media", files=upload("cat.jpg", ELF, "image/jpeg"), headers=dispatcher
    )
    assert refused.status_code == 415
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detected_type"] == "application/x-executable"
    unknown = await client.post(
        "/api/media",
        files=upload("note.jpg", b"just some text" * 10, "image/jpeg"),
        headers=dispatcher,
    )
    assert unknown.status_code == 415 and "알 수 없습니다" in unknown.json()["detail"]
    broken = await client.post(
        "/api/media", files=upload("half.png", png()[:70], "image/png"), headers=dispatcher
    )
    assert broken.status_code == 415 and "이미지를 읽을 수 없습니다" in broken.json()["detail"]


@pytest.fixture
async def small_limits_app(settings: Settings) -> AsyncIterator[FastAPI]:
    limits = MediaSettings(max_upload_bytes={"image/*": 2000, "application/pdf": 100_000})
    async with running(settings.model_copy(update={"media": limits})) as application:
        yield application


async def test_uploads_over_their_types_limit_are_refused(small_limits_app: FastAPI) -> None:
    app = small_limits_app
    org = await make_organisation(app)
    headers = await bearer(
        app, await make_user(app, organisation=org, roles={"formhelper": [Role.CLERK]})
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        big_photo = png(300, 300, (9, 9, 9)) + bytes(3000)
        refused = await http.post(
            "/api/media", files=upload("big.png", big_photo, "image/png"), headers=headers
        )
        assert refused.status_code == 413
        assert refused.json()["limit_bytes"] == 2000
        document = PDF + bytes(5000)
        accepted = await http.post(
            "/api/media", files=upload("form.pdf", document, "application/pdf"), headers=headers
        )
    assert accepted.status_code == 201
    assert (
        accepted.json()["thumbnail_note"]
        == "이 형식은 미리보기가 없습니다 (no preview for this type)."
    )
    assert list(local_store(app).root.rglob("*.png")) == []


async def test_a_video_without_a_poster_tool_says_so(
    client: httpx.AsyncClient, dispatcher: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("civic.kernel.media.content.poster_tool", lambda: None)
    monkeypatch.setattr("civic.kernel.media.service.poster_tool", lambda: None)
    sent = await client.post(
        "/api/media", files=upload("call.mp4", MP4, "video/mp4"), headers=dispatcher
    )
    assert sent.status_code == 201
    assert sent.json()["thumbnail_url"] is None and "ffmpeg" in sent.json()["thumbnail_note"]
    missing = await client.get(f"{sent.json()['url']}/thumbnail", headers=dispatcher)
    assert missing.status_code == 404 and "ffmpeg" in missing.json()["detail"]


async def test_only_staff_of_the_organisation_may_read(
    app: FastAPI, client: httpx.AsyncClient, dispatcher: dict[str, str]
) -> None:
    sent = await client.post(
        "/api/media", files=upload("p.png", png(), "image/png"), headers=dispatcher
    )
    url = sent.json()["url"]
    assert (await client.get(url)).status_code == 401
    other_org = await make_organisation(app, name="제주소방서")
    outsider = await bearer(
        app, await make_user(app, organisation=other_org, roles={"smart119": [Role.DISPATCHER]})
    )
    assert (await client.get(url, headers=outsider)).status_code == 404
    assert (await client.get(f"/api/media/{'0' * 64}", headers=dispatcher)).status_code == 404
    assert (await client.get("/api/media/not-a-hash", headers=dispatcher)).status_code == 422
    assert (
        await client.post("/api/media", files=upload("p.png", png(), "image/png"))
    ).status_code == 401


async def test_a_citizen_link_may_upload_for_its_record_only(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    async with transaction(app.state.kernel.sessions) as session:
        token = await issue_citizen_link(
            session,
            secret=app.state.kernel.secret,
            organisation_id=org.id,
            purpose="upload",
            subject_type="bulky_waste",
            subject_id="BW-1",
            valid_for=timedelta(hours=1),
        )
    form = {"link": token, "subject_type": "bulky_waste", "subject_id": "BW-1"}
    sent = await client.post("/api/media", files=upload("sofa.png", png(), "image/png"), data=form)
    assert sent.status_code == 201, sent.text
    async with app.state.kernel.sessions() as session:
        item = await session.scalar(
            select(MediaItem).where(
                MediaItem.organisation_id == org.id, MediaItem.sha256 == sent.json()["sha256"]
            )
        )
    assert item is not None and item.link_id is not None and item.uploaded_by.startswith("citizen")
    wrong = await client.post(
        "/api/media",
        files=upload("sofa.png", png(), "image/png"),
        data=form | {"subject_id": "BW-2"},
    )
    assert wrong.status_code == 403


async def test_deleting_spares_evidence_and_frees_unused_bytes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_organisation(app)
    admin = await bearer(
        app, await make_user(app, organisation=org, roles={ALL_SERVICES: [Role.ADMIN]})
    )
    kept = (
        await client.post(
            "/api/media", files=upload("k.png", png(30, 30), "image/png"), headers=admin
        )
    ).json()
    dropped = (
        await client.post(
            "/api/media", files=upload("d.png", png(31, 31), "image/png"), headers=admin
        )
    ).json()
    async with transaction(app.state.kernel.sessions) as session:
        await append_evidence(
            session,
            organisation_id=org.id,
            case_type="violation",
            case_id="V-1",
            media=[kept["sha256"]],
            recorded_by="test",
        )
    refused = await client.delete(kept["url"], headers=admin)
    assert refused.status_code == 409 and "증거" in refused.json()["detail"]
    assert (await client.delete(dropped["url"], headers=admin)).status_code == 204
    store = local_store(app)
    await eventually(lambda: not store.path_of(dropped["sha256"]).exists())
    assert store.path_of(kept["sha256"]).exists()
    assert (await client.get(dropped["url"], headers=admin)).status_code == 404
