"""The evidence chain: appending, the database refusing changes, and finding every tampering."""

import io
import json
import os
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from civic.kernel.audit import AuditEntry
from civic.kernel.db import transaction, utcnow
from civic.kernel.identity import Principal, Role
from civic.kernel.media import (
    GENESIS,
    EvidenceMedia,
    EvidenceRecord,
    EvidenceRefused,
    MediaInUse,
    append_evidence,
    export_packet,
    media_of,
    verify_chain,
    verify_packet,
)
from civic.kernel.media.evidence import body_of, hash_body
from tests.factories import make_organisation, make_user
from tests.kernel.media.files import bearer, local_store, png

RECORDS = EvidenceRecord.__table__
LINKS = EvidenceMedia.__table__


def officer(organisation_id: str) -> Principal:
    return Principal(
        user_id=None,
        name="officer-kim",
        organisation_id=organisation_id,
        grants=frozenset({("crosswalk", Role.OFFICER.value)}),
    )


async def upload(app: FastAPI, principal: Principal, data: bytes) -> str:
    async with transaction(app.state.kernel.sessions) as session:
        item = await media_of(app.state.kernel).upload(
            session, principal=principal, data=data, filename="frame.png"
        )
        return item.sha256


async def record(
    app: FastAPI, principal: Principal, case_id: str, media: list[str], **metadata: object
) -> EvidenceRecord:
    async with transaction(app.state.kernel.sessions) as session:
        return await append_evidence(
            session,
            organisation_id=principal.organisation_id,
            case_type="violation",
            case_id=case_id,
            media=media,
            metadata=metadata,
            recorded_by=principal.name,
        )


async def verify(app: FastAPI, from_seq: int):
    async with app.state.kernel.sessions() as session:
        return await verify_chain(
            session, store=media_of(app.state.kernel).store, from_seq=from_seq
        )


@asynccontextmanager
async def without_append_only_triggers(engine: AsyncEngine) -> AsyncIterator[None]:
    """Let a test tamper with evidence the way someone with database access could."""
    postgres = engine.dialect.name == "postgresql"
    tables = ("evidence_records", "evidence_media")
    async with engine.begin() as connection:
        for table in tables:
            if postgres:
                await connection.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
            else:
                await connection.execute(text(f"DROP TRIGGER {table}_no_update"))
                await connection.execute(text(f"DROP TRIGGER {table}_no_delete"))
    try:
        yield
    finally:
        async with engine.begin() as connection:
            for table in tables:
                if postgres:
                    await connection.execute(
                        text(
                            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON "
                            f"{table} FOR EACH ROW EXECUTE FUNCTION evidence_append_only()"
                        )
                    )
                else:
                    for verb in ("UPDATE", "DELETE"):
                        await connection.execute(
                            text(
                                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON "
                                f"{table} BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                            )
                        )


@pytest.fixture
async def officer_of(app: FastAPI) -> Principal:
    return officer((await make_organisation(app, name="서울경찰청")).id)


async def test_records_link_to_their_predecessor_and_verify(
    app: FastAPI, officer_of: Principal
) -> None:
    photo = await upload(app, officer_of, png(64, 64, (1, 1, 1)))
    plate = await upload(app, officer_of, png(20, 10, (2, 2, 2)))
    first = await record(app, officer_of, "V-1", [photo, plate], plate="12가3456", speed=61.5)
    second = await record(app, officer_of, "V-1", [plate], note="second look")
    third = await record(app, officer_of, "V-2", [])
    assert second.seq == first.seq + 1 and third.seq == second.seq + 1
    assert second.previous_hash == first.record_hash and third.previous_hash == second.record_hash
    assert first.previous_hash == GENESIS if first.seq == 1 else first.previous_hash != GENESIS

    report = await verify(app, first.seq)
    assert report.ok, report.broken
    assert (report.records, report.files, report.head_hash) == (3, 2, third.record_hash)


async def test_the_database_refuses_to_change_or_remove_evidence(
    app: FastAPI, officer_of: Principal
) -> None:
    entry = await record(app, officer_of, "V-3", [])
    for statement in (
        update(RECORDS).where(RECORDS.c.seq == entry.seq).values(recorded_by="mallory"),
        delete(RECORDS).where(RECORDS.c.seq == entry.seq),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with transaction(app.state.kernel.sessions) as session:
                await session.execute(statement)


async def test_refused_appends(app: FastAPI, officer_of: Principal) -> None:
    other = officer((await make_organisation(app, name="부산경찰청")).id)
    theirs = await upload(app, other, png(5, 5))
    with pytest.raises(EvidenceRefused, match="unknown media"):
        await record(app, officer_of, "V-4", [theirs])
    with pytest.raises(EvidenceRefused, match="plain JSON"):
        await record(app, officer_of, "V-4", [], seen_at=utcnow())


async def test_a_changed_record_and_a_rewritten_hash_are_both_found(
    app: FastAPI, officer_of: Principal
) -> None:
    first = await record(app, officer_of, "V-5", [], speed=58)
    second = await record(app, officer_of, "V-5", [], speed=59)
    engine = app.state.kernel.engine
    async with without_append_only_triggers(engine):
        async with engine.begin() as connection:
            await connection.execute(
                update(RECORDS).where(RECORDS.c.seq == first.seq).values(case_id="V-6")
            )
        changed = await verify(app, first.seq)
        assert changed.broken is not None
        assert (changed.broken.seq, changed.broken.kind) == (first.seq, "record_changed")

        # A careful forger recomputes the changed record's hash: the next link breaks instead.
        async with app.state.kernel.sessions() as session:
            forged = await session.get(EvidenceRecord, first.seq)
            new_hash = hash_body(body_of(forged))
        async with engine.begin() as connection:
            await connection.execute(
                update(RECORDS).where(RECORDS.c.seq == first.seq).values(record_hash=new_hash)
            )
        relinked = await verify(app, first.seq)
        assert relinked.broken is not None
        assert (relinked.broken.seq, relinked.broken.kind) == (second.seq, "link_broken")

        async with engine.begin() as connection:
            await connection.execute(
                update(RECORDS)
                .where(RECORDS.c.seq == first.seq)
                .values(case_id="V-5", record_hash=first.record_hash)
            )
    assert (await verify(app, first.seq)).ok


async def test_a_removed_record_leaves_a_gap(app: FastAPI, officer_of: Principal) -> None:
    photo = await upload(app, officer_of, png(7, 7, (7, 7, 7)))
    first = await record(app, officer_of, "V-7", [])
    middle = await record(app, officer_of, "V-7", [photo])
    await record(app, officer_of, "V-7", [])
    engine = app.state.kernel.engine
    async with without_append_only_triggers(engine):
        async with engine.begin() as connection:
            row = (
                await connection.execute(select(RECORDS).where(RECORDS.c.seq == middle.seq))
            ).one()
            links = (await connection.execute(select(LINKS).where(LINKS.c.seq == middle.seq))).all()
            await connection.execute(delete(LINKS).where(LINKS.c.seq == middle.seq))
            await connection.execute(delete(RECORDS).where(RECORDS.c.seq == middle.seq))
        gap = await verify(app, first.seq)
        assert gap.broken is not None
        assert (gap.broken.seq, gap.broken.kind) == (middle.seq, "missing_record")
        async with engine.begin() as connection:
            await connection.execute(insert(RECORDS).values(**row._mapping))
            await connection.execute(insert(LINKS), [dict(link._mapping) for link in links])
    assert (await verify(app, first.seq)).ok


async def test_a_changed_or_missing_file_is_found(app: FastAPI, officer_of: Principal) -> None:
    original = png(50, 50, (3, 4, 5))
    photo = await upload(app, officer_of, original)
    entry = await record(app, officer_of, "V-8", [photo])
    path = local_store(app).path_of(photo)
    os.chmod(path, 0o644)
    path.write_bytes(original.replace(b"IEND", b"IEN\x00"))
    changed = await verify(app, entry.seq)
    assert changed.broken is not None
    assert (changed.broken.seq, changed.broken.kind) == (entry.seq, "file_changed")
    path.unlink()
    missing = await verify(app, entry.seq)
    assert missing.broken is not None and missing.broken.kind == "file_missing"
    path.write_bytes(original)
    assert (await verify(app, entry.seq)).ok
    async with transaction(app.state.kernel.sessions) as session:
        with pytest.raises(MediaInUse):
            await media_of(app.state.kernel).delete(session, principal=officer_of, sha256=photo)


def rewrite(packet: bytes, change) -> bytes:
    """Copy a zip, letting change(name, data) alter (or drop, returning None) each entry."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(packet)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            data = change(name, source.read(name))
            if data is not None:
                target.writestr(name, data)
    return out.getvalue()


async def test_packets_carry_files_hashes_and_the_chain_excerpt(
    app: FastAPI, officer_of: Principal
) -> None:
    frame = await upload(app, officer_of, png(90, 60, (10, 20, 30)))
    crop = await upload(app, officer_of, png(30, 15, (40, 50, 60)))
    first = await record(app, officer_of, "CW-1", [frame, crop], plate="34나5678")
    await record(app, officer_of, "CW-OTHER", [], secret="other case")
    last = await record(app, officer_of, "CW-1", [crop], reviewed=True)
    target = io.BytesIO()
    async with transaction(app.state.kernel.sessions) as session:
        summary = await export_packet(
            session,
            store=media_of(app.state.kernel).store,
            principal=officer_of,
            case_type="violation",
            case_id="CW-1",
            target=target,
        )
    assert (summary.records, summary.files, summary.head_hash) == (2, 2, last.record_hash)
    packet = target.getvalue()
    with zipfile.ZipFile(io.BytesIO(packet)) as opened:
        manifest = json.loads(opened.read("manifest.json"))
        assert sorted(opened.namelist()) == sorted(
            ["manifest.json", f"media/{frame}.png", f"media/{crop}.png"]
        )
    assert [link["seq"] for link in manifest["chain"]] == [first.seq, first.seq + 1, last.seq]
    assert "other case" not in json.dumps(manifest, ensure_ascii=False)
    report = verify_packet(io.BytesIO(packet))
    assert report.ok and (report.records, report.files) == (2, 2)

    def kind_of(changed: bytes) -> str | None:
        broken = verify_packet(io.BytesIO(changed)).broken
        return broken.kind if broken else None

    def edit_manifest(edit):
        def change(name: str, data: bytes) -> bytes:
            if name != "manifest.json":
                return data
            document = json.loads(data)
            edit(document)
            return json.dumps(document).encode()

        return change

    def flip_frame(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name.endswith(f"{frame}.png") else data

    assert kind_of(rewrite(packet, flip_frame)) == "file_changed"
    assert kind_of(rewrite(packet, lambda n, d: None if crop in n else d)) == "file_missing"
    assert kind_of(rewrite(packet, lambda n, d: d)) is None
    with_extra = io.BytesIO(packet)
    with zipfile.ZipFile(with_extra, "a") as opened:
        opened.writestr("media/extra.exe", b"MZ")
    assert kind_of(with_extra.getvalue()) == "unlisted_file"

    def retype_plate(document: dict) -> None:
        document["records"][0]["metadata"]["plate"] = "99허9999"

    def break_link(document: dict) -> None:
        document["chain"][1]["record_hash"] = "f" * 64

    assert kind_of(rewrite(packet, edit_manifest(retype_plate))) == "record_changed"
    assert kind_of(rewrite(packet, edit_manifest(break_link))) == "link_broken"
    assert kind_of(b"not a zip") == "packet_unreadable"
    assert kind_of(rewrite(packet, lambda n, d: b"{" if n == "manifest.json" else d)) == (
        "manifest_invalid"
    )
    async with app.state.kernel.sessions() as session:
        exported = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "export", AuditEntry.subject_id == "violation:CW-1"
            )
        )
    assert exported is not None and exported.detail == {"records": 2, "files": 2}


async def test_packets_over_http_for_staff(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_organisation(app, name="서울경찰청")
    user = await make_user(app, organisation=org, roles={"crosswalk": [Role.OFFICER]})
    headers = await bearer(app, user)
    principal = officer(org.id)
    photo = await upload(app, principal, png(12, 12, (12, 12, 12)))
    await record(app, principal, "CW-9", [photo])
    got = await client.get("/api/evidence/violation/CW-9/packet", headers=headers)
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert 'filename="evidence-violation-CW-9.zip"' in got.headers["content-disposition"]
    assert verify_packet(io.BytesIO(got.content)).ok
    none = await client.get("/api/evidence/violation/NOPE/packet", headers=headers)
    assert none.status_code == 404
    assert (await client.get("/api/evidence/violation/CW-9/packet")).status_code == 401
