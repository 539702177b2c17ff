"""Evidence packets: a case's files, their hashes and its excerpt of the chain, in one zip.

A packet is checked without the database: every file against its hash and size, every record
of the case against its own hash, and the chain excerpt (the links of every record between
the case's first and last, other cases' content left out) link by link.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel import audit
from civic.kernel.db import utcnow
from civic.kernel.identity import Principal
from civic.kernel.media.errors import EvidenceRefused
from civic.kernel.media.evidence import (
    ChainBreak,
    ChainReport,
    Progress,
    body_of,
    case_records,
    hash_body,
    timestamp,
)
from civic.kernel.media.models import EvidenceRecord, MediaItem
from civic.kernel.media.stores import CHUNK, MediaStore

PACKET_FORMAT = "civic-evidence-packet/1"
MANIFEST = "manifest.json"
_EXTENSIONS = {"image/jpeg": ".jpg", "video/quicktime": ".mov", "audio/x-wav": ".wav"}


@dataclass(frozen=True, slots=True)
class PacketSummary:
    """What an exported packet holds."""

    records: int
    files: int
    head_hash: str


def _extension(content_type: str) -> str:
    return _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"


async def export_packet(
    session: AsyncSession,
    *,
    store: MediaStore,
    principal: Principal,
    case_type: str,
    case_id: str,
    target: IO[bytes],
    context: audit.AuditContext | None = None,
) -> PacketSummary:
    """Write the zip packet of one of the principal's organisation's cases into target."""
    records = await case_records(
        session, organisation_id=principal.organisation_id, case_type=case_type, case_id=case_id
    )
    if not records:
        raise EvidenceRefused(
            f"{case_type}:{case_id} 사건의 증거 기록이 없습니다 (no evidence).", status=404
        )
    links = (
        await session.execute(
            select(EvidenceRecord.seq, EvidenceRecord.previous_hash, EvidenceRecord.record_hash)
            .where(EvidenceRecord.seq.between(records[0].seq, records[-1].seq))
            .order_by(EvidenceRecord.seq)
        )
    ).all()
    shas = list(dict.fromkeys(sha for record in records for sha in record.media))
    types = dict(
        (
            await session.execute(
                select(MediaItem.sha256, MediaItem.content_type).where(
                    MediaItem.organisation_id == principal.organisation_id,
                    MediaItem.sha256.in_(shas),
                )
            )
        ).all()
    )
    files: list[dict[str, Any]] = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as packet:
        for sha in shas:
            content_type = types.get(sha, "application/octet-stream")
            path = f"media/{sha}{_extension(content_type)}"
            digest, size = hashlib.sha256(), 0
            with packet.open(path, "w", force_zip64=True) as out:
                async for chunk in store.open(sha):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha:
                raise EvidenceRefused(
                    f"저장소의 파일 {sha}이 바뀌었습니다: 'civic evidence verify'로 확인하세요 "
                    "(a stored file no longer matches its hash).",
                    status=409,
                )
            files.append({"path": path, "sha256": sha, "size": size, "content_type": content_type})
        manifest = {
            "format": PACKET_FORMAT,
            "case_type": case_type,
            "case_id": case_id,
            "organisation_id": principal.organisation_id,
            "exported_at": timestamp(utcnow()),
            "exported_by": principal.name,
            "files": files,
            "records": [body_of(r) | {"record_hash": r.record_hash} for r in records],
            "chain": [
                {"seq": seq, "previous_hash": previous, "record_hash": own}
                for seq, previous, own in links
            ],
        }
        packet.writestr(
            MANIFEST,
            json.dumps(manifest, ensure_ascii=False, indent=2),
            compress_type=zipfile.ZIP_DEFLATED,
        )
    await audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.EXPORT,
        subject_type="evidence_case",
        subject_id=f"{case_type}:{case_id}"[:64],
        detail={"records": len(records), "files": len(files)},
        context=context,
    )
    return PacketSummary(records=len(records), files=len(files), head_hash=records[-1].record_hash)


def verify_packet(source: Path | IO[bytes], *, on_progress: Progress | None = None) -> ChainReport:
    """Check a packet's files, records and chain excerpt; report the first mismatch."""
    try:
        with zipfile.ZipFile(source) as packet:
            return _verify_open_packet(packet, on_progress)
    except (zipfile.BadZipFile, OSError) as exc:
        return ChainReport(0, 0, None, ChainBreak(None, "packet_unreadable", f"zip: {exc}"))


def _verify_open_packet(packet: zipfile.ZipFile, on_progress: Progress | None) -> ChainReport:
    try:
        manifest = json.loads(packet.read(MANIFEST))
        files: list[dict[str, Any]] = list(manifest["files"])
        records: list[dict[str, Any]] = list(manifest["records"])
        chain: list[dict[str, Any]] = list(manifest["chain"])
        if manifest.get("format") != PACKET_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (KeyError, ValueError, TypeError) as exc:
        return ChainReport(0, 0, None, ChainBreak(None, "manifest_invalid", f"{MANIFEST}: {exc}"))
    total, done = len(files) + len(records), 0
    listed = {MANIFEST}
    for entry in files:
        broken = _check_packet_file(packet, entry)
        if broken is not None:
            return ChainReport(0, done, None, broken)
        listed.add(entry["path"])
        done += 1
        if on_progress is not None:
            on_progress(done, total)
    if extra := sorted(set(packet.namelist()) - listed):
        return ChainReport(0, done, None, ChainBreak(None, "unlisted_file", f"{extra[0]}"))
    broken = _check_links(chain)
    if broken is not None:
        return ChainReport(0, done, None, broken)
    link_of = {link["seq"]: (link["previous_hash"], link["record_hash"]) for link in chain}
    shas = {entry["sha256"] for entry in files}
    for checked, record in enumerate(records):
        broken = _check_packet_record(record, link_of, shas)
        if broken is not None:
            return ChainReport(checked, len(files), None, broken)
        if on_progress is not None:
            on_progress(len(files) + checked + 1, total)
    head = records[-1]["record_hash"] if records else None
    return ChainReport(len(records), len(files), head)


def _check_packet_file(packet: zipfile.ZipFile, entry: dict[str, Any]) -> ChainBreak | None:
    path, sha, size = entry.get("path", ""), entry.get("sha256", ""), entry.get("size")
    try:
        info = packet.getinfo(path)
    except KeyError:
        return ChainBreak(None, "file_missing", f"{path} is listed but not in the packet")
    if info.file_size != size:
        return ChainBreak(None, "file_changed", f"{path}: {info.file_size} bytes, listed {size}")
    digest = hashlib.sha256()
    with packet.open(info) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha:
        return ChainBreak(None, "file_changed", f"{path}: hash {digest.hexdigest()}, listed {sha}")
    return None


def _check_links(chain: list[dict[str, Any]]) -> ChainBreak | None:
    for before, after in zip(chain, chain[1:], strict=False):
        if after["seq"] != before["seq"] + 1:
            return ChainBreak(before["seq"] + 1, "missing_record", "the chain excerpt has a gap")
        if after["previous_hash"] != before["record_hash"]:
            return ChainBreak(after["seq"], "link_broken", f"record #{after['seq']} breaks a link")
    return None


def _check_packet_record(
    record: dict[str, Any], link_of: dict[Any, tuple[str, str]], shas: set[str]
) -> ChainBreak | None:
    body = {key: value for key, value in record.items() if key != "record_hash"}
    seq = record.get("seq")
    if hash_body(body) != record.get("record_hash"):
        return ChainBreak(seq, "record_changed", f"record #{seq} does not match its hash")
    if link_of.get(seq) != (record.get("previous_hash"), record["record_hash"]):
        return ChainBreak(seq, "link_broken", f"record #{seq} is not the one in the chain")
    if missing := [sha for sha in record.get("media", []) if sha not in shas]:
        return ChainBreak(seq, "file_missing", f"record #{seq} names {missing[0]}, not packed")
    return None
