"""Typed errors of the data plane, split by what the caller should do.

A chunk that contradicts its upload or cannot be decoded is a
:class:`~boson_shared.errors.DecodeError` (dead-lettered, never requeued): sending
it again cannot fix it. A blob that is missing or an upload that did not
complete in time is reported to the caller, who may try again.
"""

from __future__ import annotations

from boson_shared.errors import BosonError, DecodeError, TransientError


class TransferError(BosonError):
    """Root of the data plane's own errors."""


class ChunkRejectedError(DecodeError):
    """A chunk that can never be stored as sent (bad layout or encoding)."""

    reason = "chunk-rejected"


class ChunkConflictError(ChunkRejectedError):
    """A chunk that disagrees with the upload it names (size, layout, digest)."""

    reason = "chunk-conflict"


class ChunkEncodingError(ChunkRejectedError):
    """A chunk's bytes do not decode (bad zstd frame, or larger than allowed)."""

    reason = "chunk-encoding"


class BlobTooLargeError(ChunkRejectedError):
    """An upload larger than the store accepts."""

    reason = "blob-too-large"


class DigestMismatchError(TransferError):
    """Reassembled bytes whose SHA-256 is not the one they were sent under."""


class BlobNotFoundError(TransferError):
    """The store does not hold the blob a reference names."""


class TransferTimeoutError(TransientError, TransferError):
    """The transfer service did not answer in time (an upload or a fetch)."""


__all__ = [
    "BlobNotFoundError",
    "BlobTooLargeError",
    "ChunkConflictError",
    "ChunkEncodingError",
    "ChunkRejectedError",
    "DigestMismatchError",
    "TransferError",
    "TransferTimeoutError",
]
