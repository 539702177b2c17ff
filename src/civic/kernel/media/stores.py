"""Content-addressed stores of media files: a local folder, or an S3-compatible server.

A file is named by the SHA-256 of its bytes, so the same photo sent twice is kept once and a
changed file no longer matches its name. Stores know bytes only; who uploaded what, and who may
read it, is kept in the database (`civic.kernel.media.models`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from civic.kernel.media.errors import MediaNotFound, MediaTooLarge
from civic.kernel.settings import MediaSettings

CHUNK = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
Data = bytes | BinaryIO | IO[bytes]


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A stored file: its hash (its name), its size and its content type."""

    sha256: str
    size: int
    content_type: str


class MediaStore(Protocol):
    """Where media bytes live, addressed by their SHA-256."""

    async def prepare(self) -> None:
        """Make the store ready (create the folder or bucket)."""

    async def close(self) -> None:
        """Release connections."""

    async def put(
        self,
        data: Data,
        *,
        content_type: str,
        filename: str | None = None,
        max_bytes: int | None = None,
    ) -> MediaRef:
        """Store bytes (once per content) and return their reference; MediaTooLarge past max."""

    def open(self, sha256: str) -> AsyncIterator[bytes]:
        """Yield the file in chunks; MediaNotFound if absent."""

    async def get(self, sha256: str) -> bytes:
        """Return the whole file; MediaNotFound if absent."""

    async def exists(self, sha256: str) -> bool:
        """Whether the file is stored."""

    async def delete(self, sha256: str) -> None:
        """Remove the file (no check: use `MediaPart.delete`, which refuses evidence)."""


def check_sha256(sha256: str) -> str:
    """Return sha256 if it is 64 lowercase hex digits; MediaNotFound otherwise."""
    if not _SHA256.match(sha256):
        raise MediaNotFound(sha256)
    return sha256


def chunks_of(data: Data, *, size: int = CHUNK) -> Iterator[bytes]:
    """Yield data in chunks, from bytes or a readable binary file."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    while chunk := data.read(size):
        yield chunk


def copy_hashing(data: Data, out: IO[bytes], *, max_bytes: int | None) -> tuple[str, int]:
    """Copy data into out while hashing; refuse more than max_bytes; return (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks_of(data):
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise MediaTooLarge(max_bytes)
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest(), size


async def hash_stored(store: MediaStore, sha256: str) -> str | None:
    """Re-hash a stored file from its bytes; None when it is missing."""
    if not await store.exists(sha256):
        return None
    digest = hashlib.sha256()
    try:
        async for chunk in store.open(sha256):
            digest.update(chunk)
    except MediaNotFound:
        return None
    return digest.hexdigest()


class LocalMediaStore:
    """Files in a folder, sharded by hash prefix (ab/cd/abcd…), written atomically."""

    def __init__(self, root: Path) -> None:
        """Keep files under root."""
        self.root = root
        self._tmp = root / "tmp"

    def __repr__(self) -> str:
        return f"LocalMediaStore({str(self.root)!r})"

    def path_of(self, sha256: str) -> Path:
        """Return where the file with this hash lives (present or not)."""
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def prepare(self) -> None:
        """Create the folder and clear temporary files that a crash left hours ago."""
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        # Another process may be writing into tmp right now; only old files are leftovers.
        stale = time.time() - 6 * 3600
        for leftover in self._tmp.glob("put-*"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < stale:
                    leftover.unlink()

    async def close(self) -> None:
        """Nothing to release."""

    async def put(
        self,
        data: Data,
        *,
        content_type: str,
        filename: str | None = None,
        max_bytes: int | None = None,
    ) -> MediaRef:
        """Write to a temporary file, then rename it to its hash: readers never see half."""
        sha256, size = await asyncio.to_thread(self._put, data, max_bytes)
        return MediaRef(sha256=sha256, size=size, content_type=content_type)

    def _put(self, data: Data, max_bytes: int | None) -> tuple[str, int]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                sha256, size = copy_hashing(data, out, max_bytes=max_bytes)
                out.flush()
                os.fsync(out.fileno())
            final = self.path_of(sha256)
            if final.exists():
                tmp.unlink()  # the same bytes are stored already
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp.chmod(0o444)  # stored media are never edited in place
                os.replace(tmp, final)
                _fsync_dir(final.parent)
            return sha256, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    async def open(self, sha256: str) -> AsyncIterator[bytes]:
        """Yield the file in chunks."""
        path = self.path_of(sha256)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise MediaNotFound(sha256) from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def get(self, sha256: str) -> bytes:
        """Return the whole file."""
        path = self.path_of(sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise MediaNotFound(sha256) from exc

    async def exists(self, sha256: str) -> bool:
        """Whether the file is stored."""
        return await asyncio.to_thread(self.path_of(sha256).is_file)

    async def delete(self, sha256: str) -> None:
        """Remove the file if present."""
        await asyncio.to_thread(self.path_of(sha256).unlink, True)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk too.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3MediaStore:
    """Objects in a bucket of an S3-compatible server (MinIO, Ceph, AWS), named by hash."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
        prefix: str = "sha256/",
    ) -> None:
        """Connect lazily to the server at endpoint_url with these keys."""
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.endpoint_url = endpoint_url
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    def __repr__(self) -> str:
        return f"S3MediaStore({self.endpoint_url!r}, bucket={self.bucket!r})"

    def key_of(self, sha256: str) -> str:
        """Return the object key of a hash."""
        check_sha256(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    async def prepare(self) -> None:
        """Create the bucket when the server does not have it yet."""
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) != 404:
                raise
            options: dict[str, Any] = {"Bucket": self.bucket}
            if self.region != "us-east-1":
                options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            self._client.create_bucket(**options)

    async def close(self) -> None:
        """Close the HTTP connections."""
        await asyncio.to_thread(self._client.close)

    async def put(
        self,
        data: Data,
        *,
        content_type: str,
        filename: str | None = None,
        max_bytes: int | None = None,
    ) -> MediaRef:
        """Hash into a spool file first: the key is known only once every byte was read."""
        sha256, size = await asyncio.to_thread(self._put, data, content_type, max_bytes)
        return MediaRef(sha256=sha256, size=size, content_type=content_type)

    def _put(self, data: Data, content_type: str, max_bytes: int | None) -> tuple[str, int]:
        with tempfile.SpooledTemporaryFile(max_size=8 * CHUNK) as spool:
            sha256, size = copy_hashing(data, spool, max_bytes=max_bytes)
            if not self._exists(sha256):
                spool.seek(0)
                # An S3 PUT is atomic: the object appears whole or not at all.
                self._client.upload_fileobj(
                    spool,
                    self.bucket,
                    self.key_of(sha256),
                    ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": sha256}},
                )
        return sha256, size

    async def open(self, sha256: str) -> AsyncIterator[bytes]:
        """Yield the object in chunks."""
        body = await asyncio.to_thread(self._body, sha256)
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    def _body(self, sha256: str) -> Any:
        from botocore.exceptions import ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=self.key_of(sha256))["Body"]
        except ClientError as exc:
            if _status(exc) == 404:
                raise MediaNotFound(sha256) from exc
            raise

    async def get(self, sha256: str) -> bytes:
        """Return the whole object."""
        return b"".join([chunk async for chunk in self.open(sha256)])

    async def exists(self, sha256: str) -> bool:
        """Whether the object is stored."""
        return await asyncio.to_thread(self._exists, sha256)

    def _exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key_of(sha256))
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    async def delete(self, sha256: str) -> None:
        """Remove the object if present."""
        await asyncio.to_thread(
            self._client.delete_object, Bucket=self.bucket, Key=self.key_of(sha256)
        )


def _status(exc: Any) -> int:
    response = getattr(exc, "response", {}) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def build_store(settings: MediaSettings, *, var_dir: Path) -> MediaStore:
    """Return the store these settings choose."""
    if settings.backend == "s3":
        return S3MediaStore(
            endpoint_url=settings.s3_endpoint_url,
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key.get_secret_value()
            if settings.s3_access_key
            else None,
            secret_key=settings.s3_secret_key.get_secret_value()
            if settings.s3_secret_key
            else None,
            region=settings.s3_region,
        )
    return LocalMediaStore(settings.folder or var_dir / "media")
