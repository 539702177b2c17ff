"""The S3 adapter against a real S3-compatible HTTP server (moto) on 127.0.0.1."""

import hashlib
import io
from collections.abc import AsyncIterator, Iterator

import boto3
import httpx
import pytest
from fastapi import FastAPI
from moto.server import ThreadedMotoServer

from civic.kernel.db import transaction
from civic.kernel.identity import Principal, Role
from civic.kernel.media import (
    MediaNotFound,
    MediaTooLarge,
    S3MediaStore,
    append_evidence,
    media_of,
    verify_chain,
)
from civic.kernel.settings import MediaSettings
from civic.settings import Settings
from tests.factories import make_organisation, make_user
from tests.kernel.media.files import bearer, png, running

KEY, SECRET = "civic-test-key", "civic-test-secret"


@pytest.fixture
def s3_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def raw_client(url: str):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )


@pytest.fixture
async def s3_store(s3_url: str) -> AsyncIterator[S3MediaStore]:
    store = S3MediaStore(endpoint_url=s3_url, bucket="evidence", access_key=KEY, secret_key=SECRET)
    await store.prepare()  # creates the bucket
    await store.prepare()  # and finds it the second time
    yield store
    await store.close()


async def test_round_trip_dedupe_and_delete(s3_store: S3MediaStore, s3_url: str) -> None:
    data = b"\x89PNG" + bytes(range(256)) * 5000  # over one chunk
    ref = await s3_store.put(io.BytesIO(data), content_type="image/png")
    again = await s3_store.put(data, content_type="image/png")
    assert ref == again and ref.sha256 == hashlib.sha256(data).hexdigest()
    assert await s3_store.exists(ref.sha256)
    assert await s3_store.get(ref.sha256) == data
    listed = raw_client(s3_url).list_objects_v2(Bucket="evidence")["Contents"]
    assert [o["Key"] for o in listed] == [f"sha256/{ref.sha256[:2]}/{ref.sha256}"]
    head = raw_client(s3_url).head_object(Bucket="evidence", Key=listed[0]["Key"])
    assert head["ContentType"] == "image/png" and head["Metadata"]["sha256"] == ref.sha256

    with pytest.raises(MediaTooLarge):
        await s3_store.put(b"z" * 5000, content_type="image/png", max_bytes=100)
    assert len(raw_client(s3_url).list_objects_v2(Bucket="evidence")["Contents"]) == 1

    await s3_store.delete(ref.sha256)
    assert not await s3_store.exists(ref.sha256)
    with pytest.raises(MediaNotFound):
        await s3_store.get(ref.sha256)


@pytest.fixture
async def s3_app(settings: Settings, s3_url: str) -> AsyncIterator[FastAPI]:
    media = MediaSettings(
        backend="s3",
        s3_endpoint_url=s3_url,
        s3_bucket="civic-media",
        s3_access_key=KEY,
        s3_secret_key=SECRET,
    )
    async with running(settings.model_copy(update={"media": media})) as application:
        yield application


async def test_the_platform_uploads_to_s3_and_verifies_evidence_there(
    s3_app: FastAPI, s3_url: str
) -> None:
    org = await make_organisation(s3_app, name="마포구청")
    user = await make_user(s3_app, organisation=org, roles={"bulkywaste": [Role.CLERK]})
    headers = await bearer(s3_app, user)
    photo = png(400, 300, (90, 80, 70))
    transport = httpx.ASGITransport(app=s3_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        sent = await http.post(
            "/api/media", files={"file": ("sofa.jpg", photo, "image/jpeg")}, headers=headers
        )
        assert sent.status_code == 201 and sent.json()["content_type"] == "image/png"
        assert (await http.get(sent.json()["url"], headers=headers)).content == photo
        thumb = await http.get(sent.json()["thumbnail_url"], headers=headers)
        assert thumb.headers["content-type"] == "image/jpeg"
    sha = sent.json()["sha256"]
    store = media_of(s3_app.state.kernel).store
    assert isinstance(store, S3MediaStore)
    principal = Principal(user_id=user.id, name=user.username, organisation_id=org.id)
    async with transaction(s3_app.state.kernel.sessions) as session:
        entry = await append_evidence(
            session,
            organisation_id=principal.organisation_id,
            case_type="bulky_waste",
            case_id="BW-7",
            media=[sha],
            recorded_by=principal.name,
        )
    async with s3_app.state.kernel.sessions() as session:
        assert (await verify_chain(session, store=store, from_seq=entry.seq)).ok
    # Someone with the bucket's keys overwrites the photo:
    raw_client(s3_url).put_object(
        Bucket="civic-media", Key=store.key_of(sha), Body=b"not the photo"
    )
    async with s3_app.state.kernel.sessions() as session:
        report = await verify_chain(session, store=store, from_seq=entry.seq)
    assert report.broken is not None and report.broken.kind == "file_changed"
