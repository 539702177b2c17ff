"""JSON API of media: upload with limits, audited reads, thumbnails, evidence packets."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from typing import IO, Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from civic.kernel.citizen_links import CitizenLinkError, open_citizen_link
from civic.kernel.identity import ALL_SERVICES, Principal, Role
from civic.kernel.media import MediaItem, export_packet, media_of, thumbnail_note
from civic.kernel.web.deps import (
    DbSession,
    OptionalPrincipal,
    SignedIn,
    audit_context,
    kernel_of,
    require,
)
from civic.kernel.web.problems import Problem, problem_responses

router = APIRouter(prefix="/api", tags=["media"])
UPLOAD_PURPOSE = "upload"
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file.")]
Admin = Annotated[Principal, Depends(require(ALL_SERVICES))]
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class MediaRead(BaseModel):
    """A stored file as its organisation sees it."""

    sha256: str = Field(description="SHA-256 of the bytes: the file's name and its check.")
    size: int
    content_type: str = Field(description="Type found in the file's bytes.")
    original_filename: str | None
    created_at: datetime
    url: str
    thumbnail_url: str | None
    thumbnail_note: str | None = Field(description="Why there is no thumbnail, if none.")


def _read_model(item: MediaItem) -> MediaRead:
    base = f"/api/media/{item.sha256}"
    return MediaRead(
        sha256=item.sha256,
        size=item.size,
        content_type=item.content_type,
        original_filename=item.original_filename,
        created_at=item.created_at,
        url=base,
        thumbnail_url=f"{base}/thumbnail" if item.thumbnail_sha256 else None,
        thumbnail_note=thumbnail_note(item),
    )


def _staff(principal: Principal | None) -> Principal:
    if principal is None:
        raise Problem(401, "로그인이 필요합니다.", headers={"WWW-Authenticate": "Bearer"})
    if not any(role != Role.CITIZEN.value for _, role in principal.grants):
        raise Problem(403, "기관 직원만 볼 수 있습니다 (staff only).")
    return principal


@router.post(
    "/media",
    status_code=201,
    responses=problem_responses(409, 413, 415),
    summary="Upload a photo, video, recording or PDF",
)
async def upload_media(
    request: Request,
    session: DbSession,
    principal: OptionalPrincipal,
    file: Annotated[UploadFile, File(description="The file; its type is read from its bytes.")],
    link: Annotated[str | None, Form(description="A citizen's upload link token.")] = None,
    subject_type: Annotated[str | None, Form(max_length=60)] = None,
    subject_id: Annotated[str | None, Form(max_length=64)] = None,
) -> MediaRead:
    """Store a file once per content, for a signed-in person or a citizen's upload link."""
    if principal is None and link:
        if not subject_type or not subject_id:
            raise Problem(422, "링크로 올릴 때는 subject_type과 subject_id가 필요합니다.")
        try:
            principal = await open_citizen_link(
                session,
                secret=kernel_of(request).secret,
                token=link,
                purpose=UPLOAD_PURPOSE,
                subject_type=subject_type,
                subject_id=subject_id,
            )
        except CitizenLinkError as exc:
            raise Problem(403, str(exc)) from exc
    if principal is None:
        raise Problem(401, "로그인이나 업로드 링크가 필요합니다.")
    item = await media_of(kernel_of(request)).upload(
        session, principal=principal, data=file.file, filename=file.filename
    )
    return _read_model(item)


@router.get("/media/{sha256}/info", summary="Describe a stored file")
async def media_info(
    request: Request, session: DbSession, principal: OptionalPrincipal, sha256: Sha256
) -> MediaRead:
    """Return what the organisation knows of a file (not its content)."""
    item = await media_of(kernel_of(request)).readable(
        session, principal=_staff(principal), sha256=sha256
    )
    return _read_model(item)


async def _content(
    request: Request, session: DbSession, principal: Principal | None, sha256: str, thumb: bool
) -> StreamingResponse:
    item, content_type, chunks = await media_of(kernel_of(request)).read(
        session,
        principal=_staff(principal),
        sha256=sha256,
        thumbnail=thumb,
        context=audit_context(request),
    )
    headers = {
        # Content-addressed: the bytes behind a hash never change.
        "Cache-Control": "private, max-age=31536000, immutable",
        "ETag": f'"{item.thumbnail_sha256 if thumb else item.sha256}"',
        "X-Content-Type-Options": "nosniff",
    }
    if not thumb:
        name = item.original_filename or item.sha256
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(name)}"
    return StreamingResponse(chunks, media_type=content_type, headers=headers)


@router.get(
    "/media/{sha256}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
    summary="Read a stored file (audited)",
)
async def read_media(
    request: Request, session: DbSession, principal: OptionalPrincipal, sha256: Sha256
) -> StreamingResponse:
    """Return a file's bytes to staff of its organisation; the read is audited."""
    return await _content(request, session, principal, sha256, thumb=False)


@router.get(
    "/media/{sha256}/thumbnail",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
    summary="Read a file's thumbnail (audited)",
)
async def read_thumbnail(
    request: Request, session: DbSession, principal: OptionalPrincipal, sha256: Sha256
) -> StreamingResponse:
    """Return a JPEG thumbnail (images, video posters); 404 says why there is none."""
    return await _content(request, session, principal, sha256, thumb=True)


@router.delete(
    "/media/{sha256}",
    status_code=204,
    responses=problem_responses(409),
    summary="Delete a file (not evidence)",
)
async def delete_media(
    request: Request, session: DbSession, principal: Admin, sha256: Sha256
) -> Response:
    """Forget the organisation's copy of a file; files that evidence names are refused."""
    await media_of(kernel_of(request)).delete(
        session, principal=principal, sha256=sha256, context=audit_context(request)
    )
    return Response(status_code=204)


@router.get(
    "/evidence/{case_type}/{case_id}/packet",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, **problem_responses(409)},
    summary="Export a case's evidence packet (zip)",
)
async def evidence_packet(
    request: Request,
    session: DbSession,
    principal: SignedIn,
    case_type: Annotated[str, Path(max_length=60)],
    case_id: Annotated[str, Path(max_length=64)],
) -> StreamingResponse:
    """Return the case's files, manifest with hashes and chain excerpt; the export is audited."""
    staff = _staff(principal)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115
    try:
        await export_packet(
            session,
            store=media_of(kernel_of(request)).store,
            principal=staff,
            case_type=case_type,
            case_id=case_id,
            target=spool,
            context=audit_context(request),
        )
    except BaseException:
        spool.close()
        raise
    name = _SAFE_NAME.sub("_", f"evidence-{case_type}-{case_id}")[:120] + ".zip"
    return StreamingResponse(
        _drain(spool),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _drain(spool: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        spool.seek(0)
        while chunk := await asyncio.to_thread(spool.read, 1024 * 1024):
            yield chunk
    finally:
        spool.close()
