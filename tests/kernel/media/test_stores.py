"""The local store: content addressing, de-duplication, atomic writes; type sniffing; thumbnails."""

import hashlib
import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from civic.kernel.media import LocalMediaStore, MediaNotFound, MediaTooLarge, UnsupportedMedia
from civic.kernel.media.content import accepted_type, limit_for, make_thumbnail, sniff
from civic.kernel.settings import MediaSettings
from tests.kernel.media.files import ELF, MP4, PDF, jpeg, png, png_claiming


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]


@pytest.fixture
async def store(tmp_path: Path) -> LocalMediaStore:
    local = LocalMediaStore(tmp_path / "media")
    await local.prepare()
    return local


async def test_round_trip_by_hash(store: LocalMediaStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    ref = await store.put(data, content_type="application/pdf", filename="a.pdf")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert (ref.size, ref.content_type) == (len(data), "application/pdf")
    assert await store.exists(ref.sha256)
    assert await store.get(ref.sha256) == data
    assert b"".join([chunk async for chunk in store.open(ref.sha256)]) == data
    path = store.path_of(ref.sha256)
    assert path.relative_to(store.root).parts == (ref.sha256[:2], ref.sha256[2:4], ref.sha256)
    assert path.stat().st_mode & 0o222 == 0  # stored read-only

    await store.delete(ref.sha256)
    assert not await store.exists(ref.sha256)
    with pytest.raises(MediaNotFound):
        await store.get(ref.sha256)


async def test_the_same_bytes_are_stored_once(store: LocalMediaStore) -> None:
    first = await store.put(png(), content_type="image/png")
    second = await store.put(io.BytesIO(png()), content_type="image/png", filename="again.png")
    assert first == second
    assert len(stored_files(store.root)) == 1
    assert list((store.root / "tmp").iterdir()) == []


class BreaksHalfway(io.RawIOBase):
    """A stream that fails after two chunks, like a dropped upload."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise ConnectionResetError("client went away")
        return b"x" * (size if size > 0 else 1024)


async def test_a_failed_write_leaves_nothing_behind(store: LocalMediaStore) -> None:
    with pytest.raises(ConnectionResetError):
        await store.put(BreaksHalfway(), content_type="video/mp4")  # type: ignore[arg-type]
    with pytest.raises(MediaTooLarge) as refused:
        await store.put(b"y" * 5000, content_type="image/png", max_bytes=4096)
    assert refused.value.status == 413
    assert stored_files(store.root) == []
    assert list((store.root / "tmp").iterdir()) == []


async def test_names_that_are_not_hashes_are_refused(store: LocalMediaStore) -> None:
    for bad in ("../../etc/passwd", "A" * 64, "abc"):
        with pytest.raises(MediaNotFound):
            await store.get(bad)


async def test_prepare_clears_only_old_leftovers(store: LocalMediaStore) -> None:
    old = store.root / "tmp" / "put-crashed"
    fresh = store.root / "tmp" / "put-writing-now"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    hours_ago = time.time() - 7 * 3600
    os.utime(old, (hours_ago, hours_ago))
    await store.prepare()
    assert not old.exists() and fresh.exists()


def test_the_type_comes_from_the_bytes_not_the_name() -> None:
    settings = MediaSettings()
    assert sniff(png()) == "image/png"
    assert accepted_type(png(), settings=settings) == "image/png"  # whatever the header said
    assert accepted_type(MP4, settings=settings) == "video/mp4"
    assert accepted_type(PDF, settings=settings) == "application/pdf"
    with pytest.raises(UnsupportedMedia) as executable:
        accepted_type(ELF, settings=settings)
    assert executable.value.status == 415 and "x-executable" in executable.value.detail
    with pytest.raises(UnsupportedMedia, match="알 수 없습니다"):
        accepted_type(b"<html><script>alert(1)</script></html>", settings=settings)


def test_limits_by_type_then_family() -> None:
    settings = MediaSettings(max_upload_bytes={"image/png": 10, "image/*": 20, "*/*": 30})
    assert limit_for("image/png", settings=settings) == 10
    assert limit_for("image/jpeg", settings=settings) == 20
    assert limit_for("video/mp4", settings=settings) == 30
    assert limit_for("video/mp4", settings=MediaSettings(max_upload_bytes={})) is None


def test_thumbnails_are_small_upright_jpegs_without_exif() -> None:
    thumb = Image.open(io.BytesIO(make_thumbnail(png(1600, 800, (0, 255, 0, 128)), px=320)))
    assert thumb.format == "JPEG" and thumb.size == (320, 160)
    # EXIF orientation 6: the camera was turned; the thumbnail stands the right way up.
    turned = Image.open(io.BytesIO(make_thumbnail(jpeg(200, 100, orientation=6), px=100)))
    assert turned.size == (50, 100)
    assert not turned.getexif()


def test_undecodable_images_and_bombs_are_refused() -> None:
    with pytest.raises(UnsupportedMedia, match="이미지를 읽을 수 없습니다"):
        make_thumbnail(png()[:60], px=64)
    with pytest.raises(UnsupportedMedia):
        make_thumbnail(png_claiming(60_000, 60_000), px=64)
