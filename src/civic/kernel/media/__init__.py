"""Content-addressed media (photos, videos, documents) and the hash-chained evidence store."""

from civic.kernel.media.errors import (
    EvidenceRefused,
    MediaInUse,
    MediaNotFound,
    MediaProblem,
    MediaTooLarge,
    UnsupportedMedia,
)
from civic.kernel.media.evidence import (
    GENESIS,
    ChainBreak,
    ChainReport,
    EvidenceRecorded,
    append_evidence,
    case_records,
    verify_chain,
)
from civic.kernel.media.models import EvidenceMedia, EvidenceRecord, MediaItem
from civic.kernel.media.packets import PacketSummary, export_packet, verify_packet
from civic.kernel.media.service import (
    MediaDeleted,
    MediaPart,
    MediaUploaded,
    is_evidence,
    may_read_media,
    media_of,
    thumbnail_note,
)
from civic.kernel.media.stores import (
    LocalMediaStore,
    MediaRef,
    MediaStore,
    S3MediaStore,
    build_store,
    hash_stored,
)

__all__ = [
    "GENESIS",
    "ChainBreak",
    "ChainReport",
    "EvidenceMedia",
    "EvidenceRecord",
    "EvidenceRecorded",
    "EvidenceRefused",
    "LocalMediaStore",
    "MediaDeleted",
    "MediaInUse",
    "MediaItem",
    "MediaNotFound",
    "MediaPart",
    "MediaProblem",
    "MediaRef",
    "MediaStore",
    "MediaTooLarge",
    "MediaUploaded",
    "PacketSummary",
    "S3MediaStore",
    "UnsupportedMedia",
    "append_evidence",
    "build_store",
    "case_records",
    "export_packet",
    "hash_stored",
    "is_evidence",
    "may_read_media",
    "media_of",
    "thumbnail_note",
    "verify_chain",
    "verify_packet",
]
