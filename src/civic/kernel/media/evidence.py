"""Evidence records chained by hash, and the check that finds the first changed link.

Each record holds a case, the hashes of its files, free metadata, when and by whom it was
recorded, and the hash of the record before it. Its own hash covers all of that, so a record
changed in the database no longer matches its hash, a record removed leaves a gap, and a file
changed on disk no longer matches the hash under which evidence names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.bus import Event, publish
from civic.kernel.db import utcnow
from civic.kernel.media.errors import EvidenceRefused
from civic.kernel.media.models import EvidenceMedia, EvidenceRecord, MediaItem
from civic.kernel.media.stores import MediaStore, check_sha256, hash_stored

GENESIS = "0" * 64
# Any constant works: it only has to be the same in every process that appends evidence.
_CHAIN_LOCK = 7_242_001
Progress = Callable[[int, int], None]


class EvidenceRecorded(Event):
    """A record was appended to the evidence chain."""

    name = "evidence.recorded"
    seq: int
    case_type: str
    case_id: str
    record_hash: str

    def key(self) -> str:
        """Order per case."""
        return f"{self.case_type}:{self.case_id}"


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place where the evidence no longer matches its hashes."""

    seq: int | None
    kind: str  # record_changed, link_broken, missing_record, file_missing, file_changed, ...
    detail: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What a verification checked, and the first break it found (None: intact)."""

    records: int
    files: int
    head_hash: str | None
    broken: ChainBreak | None = None

    @property
    def ok(self) -> bool:
        """Whether everything matched."""
        return self.broken is None


def canonical_json(value: Any) -> bytes:
    """Serialise value one way only: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def timestamp(moment: datetime) -> str:
    """Write a time the one way it is hashed: UTC with microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def body_of(record: EvidenceRecord) -> dict[str, Any]:
    """Return the fields of a record that its hash covers."""
    return {
        "seq": record.seq,
        "organisation_id": record.organisation_id,
        "case_type": record.case_type,
        "case_id": record.case_id,
        "media": list(record.media),
        "metadata": record.meta,
        "recorded_at": timestamp(record.recorded_at),
        "recorded_by": record.recorded_by,
        "previous_hash": record.previous_hash,
    }


def hash_body(body: Mapping[str, Any]) -> str:
    """Return the SHA-256 of a record body's canonical JSON."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


async def _lock_chain(session: AsyncSession) -> None:
    # PostgreSQL: appenders queue here, and each then reads the head its predecessor committed.
    # SQLite has one writer at a time; the unique previous_hash refuses a fork on both.
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})


async def append_evidence(
    session: AsyncSession,
    *,
    organisation_id: str,
    case_type: str,
    case_id: str,
    media: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    recorded_by: str,
    now: datetime | None = None,
) -> EvidenceRecord:
    """Append a record of a case's files to the chain; files must be the organisation's."""
    if not (0 < len(case_type) <= 60 and 0 < len(case_id) <= 64):
        raise EvidenceRefused("case_type (≤60) and case_id (≤64) must be given.")
    shas = [check_sha256(sha) for sha in media]
    known = set(
        (
            await session.scalars(
                select(MediaItem.sha256).where(
                    MediaItem.organisation_id == organisation_id, MediaItem.sha256.in_(shas)
                )
            )
        ).all()
    )
    if unknown := [sha for sha in shas if sha not in known]:
        raise EvidenceRefused(f"이 기관에 없는 미디어입니다 (unknown media): {unknown[0]}")
    try:
        # Stored exactly as hashed: a JSON round trip would turn 1 into "1" as a key, etc.
        plain: dict[str, Any] = json.loads(canonical_json(dict(metadata or {})))
    except (TypeError, ValueError) as exc:
        raise EvidenceRefused(f"metadata must be plain JSON: {exc}") from exc
    await _lock_chain(session)
    head = await session.scalar(select(EvidenceRecord).order_by(EvidenceRecord.seq.desc()).limit(1))
    record = EvidenceRecord(
        seq=head.seq + 1 if head else 1,
        organisation_id=organisation_id,
        case_type=case_type,
        case_id=case_id,
        media=shas,
        meta=plain,
        recorded_at=now or utcnow(),
        recorded_by=recorded_by[:120],
        previous_hash=head.record_hash if head else GENESIS,
    )
    record.record_hash = hash_body(body_of(record))
    session.add(record)
    await session.flush()
    session.add_all(EvidenceMedia(seq=record.seq, sha256=sha) for sha in dict.fromkeys(shas))
    await session.flush()
    await publish(
        session,
        EvidenceRecorded(
            organisation_id=organisation_id,
            seq=record.seq,
            case_type=case_type,
            case_id=case_id,
            record_hash=record.record_hash,
        ),
    )
    return record


async def case_records(
    session: AsyncSession, *, organisation_id: str, case_type: str, case_id: str
) -> list[EvidenceRecord]:
    """Return an organisation's records of one case, oldest first."""
    rows = await session.scalars(
        select(EvidenceRecord)
        .where(
            EvidenceRecord.organisation_id == organisation_id,
            EvidenceRecord.case_type == case_type,
            EvidenceRecord.case_id == case_id,
        )
        .order_by(EvidenceRecord.seq)
    )
    return list(rows.all())


async def verify_chain(
    session: AsyncSession,
    *,
    store: MediaStore,
    from_seq: int = 1,
    batch: int = 500,
    on_progress: Progress | None = None,
) -> ChainReport:
    """Recompute every record hash and link from from_seq on, and re-hash every file."""
    total = await session.scalar(
        select(func.count()).select_from(EvidenceRecord).where(EvidenceRecord.seq >= from_seq)
    )
    total = int(total or 0)
    previous = GENESIS
    if from_seq > 1:
        anchor = await session.scalar(
            select(EvidenceRecord.record_hash).where(EvidenceRecord.seq == from_seq - 1)
        )
        if anchor is None:
            return ChainReport(0, 0, None, _missing(from_seq - 1))
        previous = anchor
    expected, checked, files = from_seq, 0, 0
    verified: set[str] = set()
    while True:
        rows = (
            await session.scalars(
                select(EvidenceRecord)
                .where(EvidenceRecord.seq >= expected)
                .order_by(EvidenceRecord.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            break
        for record in rows:
            broken = _check_record(record, expected=expected, previous=previous)
            if broken is None:
                for sha in record.media:
                    if sha in verified:
                        continue
                    broken = await _check_file(store, sha, record.seq)
                    if broken is not None:
                        break
                    verified.add(sha)
                    files += 1
            if broken is not None:
                return ChainReport(checked, files, previous, broken)
            previous, expected, checked = record.record_hash, record.seq + 1, checked + 1
            session.expunge(record)  # a long chain must not pile up in the identity map
            if on_progress is not None:
                on_progress(checked, total)
    return ChainReport(checked, files, previous if checked else None)


def _missing(seq: int) -> ChainBreak:
    return ChainBreak(seq, "missing_record", f"기록 #{seq}가 없습니다 (record removed).")


def _check_record(record: EvidenceRecord, *, expected: int, previous: str) -> ChainBreak | None:
    if record.seq != expected:
        return _missing(expected)
    if hash_body(body_of(record)) != record.record_hash:
        return ChainBreak(
            record.seq, "record_changed", f"기록 #{record.seq}의 내용이 바뀌었습니다 (changed)."
        )
    if record.previous_hash != previous:
        return ChainBreak(
            record.seq,
            "link_broken",
            f"기록 #{record.seq}가 앞 기록의 해시와 이어지지 않습니다 (broken link).",
        )
    return None


async def _check_file(store: MediaStore, sha256: str, seq: int) -> ChainBreak | None:
    actual = await hash_stored(store, sha256)
    if actual is None:
        return ChainBreak(seq, "file_missing", f"기록 #{seq}의 파일 {sha256}이 없습니다.")
    if actual != sha256:
        return ChainBreak(
            seq, "file_changed", f"기록 #{seq}의 파일 {sha256}이 바뀌었습니다 (now {actual})."
        )
    return None
