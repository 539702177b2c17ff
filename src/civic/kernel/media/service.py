"""The media kernel part: checked uploads, audited reads, deletion that spares evidence."""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel import audit
from civic.kernel.bus import Event, publish
from civic.kernel.identity import Principal, Role
from civic.kernel.media.content import (
    IMAGE_TYPES,
    NO_POSTER_TOOL,
    POSTER_FAILED,
    SNIFF_BYTES,
    THUMBNAIL_TYPE,
    accepted_type,
    limit_for,
    make_thumbnail,
    poster_frame,
    poster_tool,
)
from civic.kernel.media.errors import MediaInUse, MediaNotFound, MediaProblem, MediaTooLarge
from civic.kernel.media.models import EvidenceMedia, MediaItem
from civic.kernel.media.stores import CHUNK, Data, MediaStore, build_store, check_sha256
from civic.kernel.runtime import Kernel
from civic.kernel.settings import MediaSettings

log = structlog.get_logger("civic.media")
_REMOVER = "kernel.media.remove_unreferenced"


class MediaUploaded(Event):
    """An organisation received a file."""

    name = "media.uploaded"
    media_id: str
    sha256: str
    content_type: str
    size: int

    def key(self) -> str:
        """Order per file."""
        return self.sha256


class MediaDeleted(Event):
    """An organisation dropped a file; its bytes go once nobody refers to them."""

    name = "media.deleted"
    sha256: str
    thumbnail_sha256: str | None = None

    def key(self) -> str:
        """Order per file."""
        return self.sha256


def may_read_media(principal: Principal, item: MediaItem) -> bool:
    """Whether principal may see a file: staff (any role but citizen) of its organisation."""
    if principal.via == "link" or principal.organisation_id != item.organisation_id:
        return False
    return any(role != Role.CITIZEN.value for _, role in principal.grants)


def thumbnail_note(item: MediaItem) -> str | None:
    """Say why a file has no thumbnail, when it has none."""
    if item.thumbnail_sha256 is not None:
        return None
    if item.content_type.startswith("video/"):
        return NO_POSTER_TOOL if poster_tool() is None else POSTER_FAILED
    return "이 형식은 미리보기가 없습니다 (no preview for this type)."


class MediaPart:
    """Kernel part holding the media store; services reach it with `media_of(kernel)`."""

    name = "media"

    def __init__(
        self, settings: MediaSettings, *, var_dir: Path, store: MediaStore | None = None
    ) -> None:
        """Use the store these settings choose, unless one is given."""
        self.settings = settings
        self.var_dir = var_dir
        self._store = store

    @property
    def store(self) -> MediaStore:
        """The store of media bytes."""
        if self._store is None:
            raise LookupError("the media part has not started")
        return self._store

    async def start(self, kernel: Kernel) -> None:
        """Open the store and remove bytes nobody refers to after a deletion commits."""
        if self._store is None:
            self._store = await asyncio.to_thread(build_store, self.settings, var_dir=self.var_dir)
        await self._store.prepare()
        if poster_tool() is None:
            log.info("no_poster_tool", detail=NO_POSTER_TOOL)
        from civic.kernel.relay import bus_of

        try:
            bus = bus_of(kernel)
        except LookupError:
            log.warning("media_without_bus", detail="deleted files stay in the store")
            return
        if not any(s.name == _REMOVER for s in bus.subscriptions):
            bus.subscribe(MediaDeleted, handler=self._remove_unreferenced, name=_REMOVER)

    async def stop(self) -> None:
        """Close the store."""
        if self._store is not None:
            await self._store.close()

    async def upload(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        data: Data,
        filename: str | None = None,
    ) -> MediaItem:
        """Check type (from the bytes) and size, store once per hash, record who sent it."""
        stream = await asyncio.to_thread(self._seekable, data)
        try:
            return await self._upload(session, principal=principal, stream=stream, name=filename)
        finally:
            if stream is not data:
                stream.close()

    async def _upload(
        self, session: AsyncSession, *, principal: Principal, stream: IO[bytes], name: str | None
    ) -> MediaItem:
        head = stream.read(SNIFF_BYTES)
        content_type = accepted_type(head, settings=self.settings)
        limit = limit_for(content_type, settings=self.settings)
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        if limit is not None and size > limit:
            raise MediaTooLarge(limit, content_type)
        thumbnail: bytes | None = None
        if content_type in IMAGE_TYPES:
            thumbnail = await asyncio.to_thread(
                make_thumbnail, stream, px=self.settings.thumbnail_px
            )
        elif content_type.startswith("video/"):
            thumbnail, note = await poster_frame(stream, px=self.settings.thumbnail_px)
            if note:
                log.info("no_poster_frame", detail=note)
        stream.seek(0)
        ref = await self.store.put(
            stream, content_type=content_type, filename=name, max_bytes=limit
        )
        thumb = None
        if thumbnail is not None:
            thumb = (await self.store.put(thumbnail, content_type=THUMBNAIL_TYPE)).sha256
        existing = await self._row(session, principal.organisation_id, ref.sha256)
        if existing is not None:
            return existing
        item = MediaItem(
            organisation_id=principal.organisation_id,
            sha256=ref.sha256,
            size=ref.size,
            content_type=content_type,
            original_filename=(name or "")[:255] or None,
            uploaded_by=principal.name,
            uploaded_by_user_id=principal.user_id,
            link_id=principal.link.link_id if principal.link else None,
            thumbnail_sha256=thumb,
        )
        try:
            async with session.begin_nested():
                session.add(item)
        except IntegrityError:
            # The same organisation sent the same bytes at the same moment: keep the first.
            existing = await self._row(session, principal.organisation_id, ref.sha256)
            if existing is None:
                raise
            return existing
        await publish(
            session,
            MediaUploaded(
                organisation_id=item.organisation_id,
                media_id=item.id,
                sha256=item.sha256,
                content_type=item.content_type,
                size=item.size,
            ),
        )
        return item

    def _seekable(self, data: Data) -> IO[bytes]:
        if isinstance(data, bytes | bytearray | memoryview):
            return io.BytesIO(bytes(data))
        if data.seekable():
            data.seek(0)
            return data
        # A stream that cannot rewind is spooled, but never past the largest limit.
        ceiling = max(self.settings.max_upload_bytes.values(), default=None)
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * CHUNK)  # noqa: SIM115
        try:
            total = 0
            while chunk := data.read(CHUNK):
                total += len(chunk)
                if ceiling is not None and total > ceiling:
                    raise MediaTooLarge(ceiling)
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    async def _row(
        self, session: AsyncSession, organisation_id: str, sha256: str
    ) -> MediaItem | None:
        row: MediaItem | None = await session.scalar(
            select(MediaItem).where(
                MediaItem.organisation_id == organisation_id, MediaItem.sha256 == sha256
            )
        )
        return row

    async def readable(
        self, session: AsyncSession, *, principal: Principal, sha256: str
    ) -> MediaItem:
        """Return the principal's organisation's record of a file, if they may see it."""
        check_sha256(sha256)
        item = await self._row(session, principal.organisation_id, sha256)
        if item is None:
            raise MediaNotFound(sha256)
        if not may_read_media(principal, item):
            raise MediaProblem(403, "미디어를 볼 권한이 없습니다 (staff of the organisation only).")
        return item

    async def read(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        sha256: str,
        thumbnail: bool = False,
        context: audit.AuditContext | None = None,
    ) -> tuple[MediaItem, str, AsyncIterator[bytes]]:
        """Open a file (or its thumbnail) for principal, noting the read in the audit log."""
        item = await self.readable(session, principal=principal, sha256=sha256)
        target, content_type = item.sha256, item.content_type
        if thumbnail:
            if item.thumbnail_sha256 is None:
                raise MediaProblem(404, thumbnail_note(item) or "미리보기가 없습니다.")
            target, content_type = item.thumbnail_sha256, THUMBNAIL_TYPE
        if not await self.store.exists(target):
            log.error("media_file_missing", sha256=target)
            raise MediaNotFound(target)
        # Photos and videos show people: every look at one is personal data read.
        await audit.record_personal_read(
            session,
            principal=principal,
            subject_type="media",
            subject_id=item.sha256,
            fields=["thumbnail" if thumbnail else "content"],
            context=context,
        )
        return item, content_type, self.store.open(target)

    async def delete(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        sha256: str,
        context: audit.AuditContext | None = None,
    ) -> None:
        """Forget the organisation's copy of a file; refused when evidence refers to it."""
        check_sha256(sha256)
        item = await self._row(session, principal.organisation_id, sha256)
        if item is None:
            raise MediaNotFound(sha256)
        if await is_evidence(session, sha256=sha256):
            raise MediaInUse(sha256)
        await session.delete(item)
        await audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.DELETE,
            subject_type="media",
            subject_id=sha256,
            detail={"filename": item.original_filename},
            context=context,
        )
        await publish(
            session,
            MediaDeleted(
                organisation_id=item.organisation_id,
                sha256=sha256,
                thumbnail_sha256=item.thumbnail_sha256,
            ),
        )

    async def _remove_unreferenced(self, session: AsyncSession, event: MediaDeleted) -> None:
        for sha256 in filter(None, (event.sha256, event.thumbnail_sha256)):
            used = await session.scalar(
                select(MediaItem.id)
                .where(or_(MediaItem.sha256 == sha256, MediaItem.thumbnail_sha256 == sha256))
                .limit(1)
            )
            if used is None and not await is_evidence(session, sha256=sha256):
                await self.store.delete(sha256)
                log.info("media_removed", sha256=sha256)


async def is_evidence(session: AsyncSession, *, sha256: str) -> bool:
    """Whether any evidence record refers to a file."""
    found = await session.scalar(
        select(EvidenceMedia.seq).where(EvidenceMedia.sha256 == sha256).limit(1)
    )
    return found is not None


def media_of(kernel: Kernel) -> MediaPart:
    """Return the running media part."""
    return kernel.part("media", MediaPart)
