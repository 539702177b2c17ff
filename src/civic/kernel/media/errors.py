"""Why a media file or an evidence record was refused: each one a problem document."""

from __future__ import annotations

from civic.kernel.web.problems import Problem


class MediaProblem(Problem):
    """A refused media operation; the API answers it as problem details with its status."""


class MediaTooLarge(MediaProblem):
    """An upload over the limit of its content type."""

    def __init__(self, limit: int, content_type: str | None = None) -> None:
        """Name the limit that was passed."""
        what = f"{content_type} 파일은" if content_type else "파일은"
        super().__init__(
            413,
            f"{what} {limit:,} 바이트까지 받습니다 (file too large).",
            limit_bytes=limit,
        )


class UnsupportedMedia(MediaProblem):
    """A file whose real type (from its bytes) is not accepted, or that cannot be read."""

    def __init__(self, detail: str, *, content_type: str | None = None) -> None:
        """Say what was found in the file."""
        super().__init__(415, detail, detected_type=content_type)


class MediaNotFound(MediaProblem):
    """No such file here, or one the asker may not see."""

    def __init__(self, sha256: str) -> None:
        """Name the missing hash."""
        super().__init__(404, f"미디어 {sha256[:64]}를 찾을 수 없습니다 (no such media).")


class MediaInUse(MediaProblem):
    """A file that evidence refers to: it must stay as it is."""

    def __init__(self, sha256: str) -> None:
        """Name the protected hash."""
        super().__init__(
            409,
            f"증거 기록이 참조하는 미디어는 지울 수 없습니다 ({sha256[:12]}… is evidence).",
        )


class EvidenceRefused(MediaProblem):
    """An evidence record that cannot be appended as asked."""

    def __init__(self, detail: str, *, status: int = 422) -> None:
        """Say what is wrong with it."""
        super().__init__(status, detail)
