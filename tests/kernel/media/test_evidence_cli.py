"""`civic evidence verify`: the chain in the database, and exported packets."""

import asyncio
import io
import os
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from civic.cli import app
from civic.kernel.db import create_engine, create_sessionmaker, transaction
from civic.kernel.identity import OrganisationKind, Principal, create_organisation
from civic.kernel.media import LocalMediaStore, MediaPart, append_evidence, export_packet
from civic.kernel.settings import MediaSettings
from tests.kernel.media.files import png


async def seed(url: str, var_dir: Path) -> str:
    """Record two pieces of evidence, export their packet, and return the photo's hash."""
    engine = create_engine(url)
    store = LocalMediaStore(var_dir / "media")
    media = MediaPart(MediaSettings(), var_dir=var_dir, store=store)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            org = await create_organisation(
                session, code="seoul-police", name="서울경찰청", kind=OrganisationKind.OTHER
            )
            officer = Principal(
                user_id=None,
                name="officer",
                organisation_id=org.id,
                grants=frozenset({("crosswalk", "officer")}),
            )
            photo = (await media.upload(session, principal=officer, data=png(80, 60))).sha256
            for note in ("seen", "reviewed"):
                await append_evidence(
                    session,
                    organisation_id=org.id,
                    case_type="violation",
                    case_id="CW-77",
                    media=[photo],
                    metadata={"note": note},
                    recorded_by="officer",
                )
            with (var_dir / "packet.zip").open("wb") as target:
                await export_packet(
                    session,
                    store=store,
                    principal=officer,
                    case_type="violation",
                    case_id="CW-77",
                    target=target,
                )
        return photo
    finally:
        await engine.dispose()


def test_verify_passes_an_intact_chain_and_fails_a_tampered_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CIVIC_DATABASE__URL", url)
    monkeypatch.setenv("CIVIC_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("CIVIC_LOG_JSON", "false")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    photo = asyncio.run(seed(url, tmp_path))

    intact = runner.invoke(app, ["evidence", "verify"])
    assert intact.exit_code == 0, intact.output
    assert (
        "이상 없음" in intact.output and "기록 2개" in intact.output and "파일 1개" in intact.output
    )
    packet = tmp_path / "packet.zip"
    checked = runner.invoke(app, ["evidence", "verify", "--packet", str(packet)])
    assert checked.exit_code == 0, checked.output

    path = LocalMediaStore(tmp_path / "media").path_of(photo)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"\x00")
    tampered = runner.invoke(app, ["evidence", "verify"])
    assert tampered.exit_code == 1
    assert "변조 발견" in tampered.output and "#1 file_changed" in tampered.output

    forged = io.BytesIO()
    with zipfile.ZipFile(packet) as source, zipfile.ZipFile(forged, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, data.replace(b'"seen"', b'"unseen"'))
    packet.write_bytes(forged.getvalue())
    refused = runner.invoke(app, ["evidence", "verify", "--packet", str(packet)])
    assert refused.exit_code == 1 and "record_changed" in refused.output
