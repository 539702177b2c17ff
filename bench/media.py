"""Benchmark of the media store and the evidence chain, against plain hashing in the same run.

Figures:

1. Store: N files of 256 KiB put into the local content-addressed store (hash while writing to a
   temporary file, fsync, rename), against the baseline of hashing the same bytes and writing
   them with `Path.write_bytes` (no fsync, no rename): MB/s and the ratio.
2. Evidence: records appended to the chain (SQLite, one transaction per record, as services do)
   per second; then `verify_chain` over all of them (recompute every hash and link, re-hash
   every file) in records/s, against the baseline of hashing the same files alone.

Only the local disk and a temporary SQLite file are used.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from civic.kernel import migrations
from civic.kernel.db import create_engine, create_sessionmaker, transaction
from civic.kernel.identity import OrganisationKind, Principal, create_organisation
from civic.kernel.media import LocalMediaStore, MediaItem, append_evidence, verify_chain

FILES = int(os.environ.get("CIVIC_BENCH_MEDIA_FILES", "200"))
RECORDS = int(os.environ.get("CIVIC_BENCH_EVIDENCE_RECORDS", "500"))
SIZE = 256 * 1024
console = Console()


async def bench_store(folder: Path, blobs: list[bytes]) -> tuple[float, float]:
    """Return seconds for the baseline and for the store."""
    plain = folder / "plain"
    plain.mkdir()
    started = time.perf_counter()
    for blob in blobs:
        (plain / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    baseline = time.perf_counter() - started
    store = LocalMediaStore(folder / "media")
    await store.prepare()
    started = time.perf_counter()
    for blob in blobs:
        await store.put(blob, content_type="image/jpeg")
    return baseline, time.perf_counter() - started


async def bench_evidence(folder: Path, blobs: list[bytes]) -> tuple[float, float, float, int]:
    """Return seconds to append, to verify, to hash the files alone, and files checked."""
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    await migrations.upgrade(engine)
    sessions = create_sessionmaker(engine)
    store = LocalMediaStore(folder / "media")
    try:
        async with transaction(sessions) as session:
            org = await create_organisation(
                session, code="bench", name="bench", kind=OrganisationKind.OTHER
            )
            principal = Principal(user_id=None, name="bench", organisation_id=org.id)
            shas = [hashlib.sha256(blob).hexdigest() for blob in blobs]
            session.add_all(
                MediaItem(
                    organisation_id=org.id,
                    sha256=sha,
                    size=SIZE,
                    content_type="image/jpeg",
                    uploaded_by=principal.name,
                )
                for sha in shas
            )
        started = time.perf_counter()
        for index in range(RECORDS):
            async with transaction(sessions) as session:
                await append_evidence(
                    session,
                    organisation_id=org.id,
                    case_type="violation",
                    case_id=f"CW-{index // 4}",
                    media=[shas[index % len(shas)]],
                    metadata={"plate": "12가3456", "speed_kmh": 41.5, "index": index},
                    recorded_by="bench",
                )
        appended = time.perf_counter() - started
        started = time.perf_counter()
        async with sessions() as session:
            report = await verify_chain(session, store=store)
        verified = time.perf_counter() - started
        assert report.ok, report.broken
        started = time.perf_counter()
        for sha in dict.fromkeys(shas[: min(RECORDS, len(shas))]):
            hashlib.sha256(store.path_of(sha).read_bytes()).hexdigest()
        hashed = time.perf_counter() - started
        return appended, verified, hashed, report.files
    finally:
        await engine.dispose()


def main() -> int:
    """Run the media benchmark; return the exit status."""
    console.print(
        f"[bold]Civic media benchmark[/bold] · Python {platform.python_version()} · "
        f"{platform.machine()} · {os.cpu_count()} CPUs · {FILES} files of {SIZE // 1024} KiB · "
        f"{RECORDS} evidence records"
    )
    blobs = [os.urandom(SIZE) for _ in range(FILES)]
    megabytes = FILES * SIZE / 1e6
    with tempfile.TemporaryDirectory(prefix="civic-bench-media-") as temp:
        folder = Path(temp)
        baseline, stored = asyncio.run(bench_store(folder, blobs))
        appended, verified, hashed, files = asyncio.run(bench_evidence(folder, blobs))

    table = Table(title="media store and evidence chain")
    for column in ("what", "figure", "baseline (same run)", "ratio"):
        table.add_column(column, justify="right" if column != "what" else "left")
    table.add_row(
        "store put (hash, temp file, fsync, rename)",
        f"{megabytes / stored:,.0f} MB/s",
        f"{megabytes / baseline:,.0f} MB/s (hash + write_bytes)",
        f"{stored / baseline:.1f}× slower",
    )
    table.add_row(
        "evidence append (one transaction each)",
        f"{RECORDS / appended:,.0f} records/s",
        "—",
        "—",
    )
    table.add_row(
        f"verify_chain ({RECORDS} records, {files} files)",
        f"{RECORDS / verified:,.0f} records/s · {verified:.2f} s",
        f"{hashed:.2f} s (hash the files alone)",
        f"{verified / hashed:.1f}×",
    )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
