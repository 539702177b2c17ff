"""Files and apps for the media tests."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from PIL import Image

from civic.app import create_app
from civic.kernel.db import transaction
from civic.kernel.identity import User, issue_api_token
from civic.kernel.media import LocalMediaStore, media_of
from civic.settings import Settings

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56) + b"\x00" * 400
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4000)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def png(width: int = 64, height: int = 48, color: tuple[int, ...] = (200, 30, 30)) -> bytes:
    mode = "RGBA" if len(color) == 4 else "RGB"
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg(width: int = 64, height: int = 48, *, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), (20, 120, 220))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    """Start a platform with these settings."""
    application = create_app(settings, services=[])
    async with application.router.lifespan_context(application):
        yield application


async def bearer(app: FastAPI, user: User) -> dict[str, str]:
    """Return headers that sign a request in as user."""
    async with transaction(app.state.kernel.sessions) as session:
        token = await issue_api_token(session, user=user, name="media tests")
    return {"authorization": f"Bearer {token}"}


def local_store(app: FastAPI) -> LocalMediaStore:
    store = media_of(app.state.kernel).store
    assert isinstance(store, LocalMediaStore)
    return store
