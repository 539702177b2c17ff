"""What a file really is (from its bytes), what may be uploaded, thumbnails and poster frames."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import io
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import IO, Any

import filetype
import structlog
from PIL import Image, ImageOps, UnidentifiedImageError

from civic.kernel.media.errors import UnsupportedMedia
from civic.kernel.settings import MediaSettings

log = structlog.get_logger("civic.media")
SNIFF_BYTES = 8192
THUMBNAIL_TYPE = "image/jpeg"
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
NO_POSTER_TOOL = (
    "동영상 포스터 프레임을 만들 수 없습니다: ffmpeg도 OpenCV도 설치되어 있지 않습니다 "
    "(no poster frame: install the ffmpeg package or opencv-python-headless)."
)
POSTER_FAILED = (
    "동영상에서 포스터 프레임을 읽지 못했습니다 (the video's first frame was unreadable)."
)
_POSTER_TIMEOUT_S = 30.0


def sniff(head: bytes) -> str | None:
    """Return the content type that a file's first bytes show, or None when unknown."""
    kind = filetype.guess(head[:SNIFF_BYTES])
    return str(kind.mime) if kind is not None else None


def accepted_type(head: bytes, *, settings: MediaSettings) -> str:
    """Return the real type of a file whose first bytes are head, if uploads of it are allowed."""
    found = sniff(head)
    if found is None:
        raise UnsupportedMedia(
            "파일 형식을 알 수 없습니다. 사진(JPEG·PNG·WebP), 동영상, 음성, PDF를 보내 주세요 "
            "(unrecognised file type)."
        )
    if found not in settings.allowed_types:
        raise UnsupportedMedia(
            f"{found} 형식은 받지 않습니다 (not accepted; allowed: "
            f"{', '.join(settings.allowed_types)}).",
            content_type=found,
        )
    return found


def limit_for(content_type: str, *, settings: MediaSettings) -> int | None:
    """Return the upload limit of a type: its own, its family's ('image/*'), or '*/*'."""
    family = content_type.split("/", 1)[0] + "/*"
    for key in (content_type, family, "*/*"):
        if key in settings.max_upload_bytes:
            return settings.max_upload_bytes[key]
    return None


def make_thumbnail(source: IO[bytes] | bytes, *, px: int) -> bytes:
    """Return a JPEG no larger than px on its longest side, upright and without EXIF (GPS)."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            # A small file that decodes to a gigapixel image is an attack, not a photo.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as opened:
                opened.draft("RGB", (px, px))
                image = ImageOps.exif_transpose(opened)
                image.thumbnail((px, px))
                if image.mode in ("RGBA", "LA", "P"):
                    image = image.convert("RGBA")
                    flat = Image.new("RGB", image.size, "white")
                    flat.paste(image, mask=image.getchannel("A"))
                    image = flat
                elif image.mode not in ("RGB", "L"):
                    image = image.convert("RGB")
                out = io.BytesIO()
                image.save(out, "JPEG", quality=82, optimize=True)
                return out.getvalue()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise UnsupportedMedia(
            f"이미지를 읽을 수 없습니다 (the image could not be decoded: {exc}).",
        ) from exc


def poster_tool() -> str | None:
    """Return how poster frames of videos are made here: 'ffmpeg', 'opencv' or None."""
    if shutil.which("ffmpeg"):
        return "ffmpeg"
    if importlib.util.find_spec("cv2") is not None:
        return "opencv"
    return None


async def poster_frame(video: IO[bytes], *, px: int) -> tuple[bytes | None, str | None]:
    """Return a thumbnail of a video's first frame, or None and the reason there is none."""
    tool = poster_tool()
    if tool is None:
        return None, NO_POSTER_TOOL
    with tempfile.TemporaryDirectory(prefix="civic-poster-") as folder:
        path = Path(folder) / "video"
        await asyncio.to_thread(_spill, video, path)
        try:
            if tool == "ffmpeg":
                frame = await _ffmpeg_frame(path)
            else:
                frame = await asyncio.to_thread(_opencv_frame, path)
        except (OSError, TimeoutError) as exc:
            log.warning("poster_failed", tool=tool, error=repr(exc))
            frame = None
    if not frame:
        return None, POSTER_FAILED
    try:
        return await asyncio.to_thread(make_thumbnail, frame, px=px), None
    except UnsupportedMedia:
        return None, POSTER_FAILED


def _spill(video: IO[bytes], path: Path) -> None:
    video.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(video, out)
    video.seek(0)


async def _ffmpeg_frame(path: Path) -> bytes | None:
    binary = shutil.which("ffmpeg")
    if binary is None:
        return None
    process = await asyncio.create_subprocess_exec(
        binary,
        *("-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe"),
        *("-vcodec", "png", "-"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(_POSTER_TIMEOUT_S):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        log.warning("ffmpeg_failed", error=err.decode(errors="replace")[-300:])
        return None
    return out or None


def _opencv_frame(path: Path) -> bytes | None:
    cv2: Any = importlib.import_module("cv2")
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read()
        if not ok:
            return None
        encoded, buffer = cv2.imencode(".png", frame)
        return bytes(buffer) if encoded else None
    finally:
        capture.release()
