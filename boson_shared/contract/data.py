"""The data plane's messages (``data.*``): content-addressed blobs, chunked
uploads and fetches, and the monitor's list of the blobs still referenced.

:class:`DataRef` is how the other messages (a task's input, a result's
output, a record) point at a stored blob.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from boson_shared.contract.base import (
    Count,
    Digest,
    Identifier,
    Message,
    Model,
    Timestamp,
    now,
)


class DataRef(Model):
    """A content-addressed blob held by the transfer service."""

    digest: Digest
    size: Count = Field(description="The blob's size in bytes.")


class DataChunk(Message):
    """One piece of a content-addressed upload (or of a fetch reply).

    Schema version 2: ``digest`` may be absent. A streamed upload does not
    know its blob's SHA-256 until it has read it all, so only its last chunk
    (``index == total_chunks - 1``) carries it; a chunk whose sender knew the
    digest up front (a resumed upload, a fetch reply) always carries it.
    """

    kind: Literal["data.chunk"] = "data.chunk"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: every chunk had the digest
    upload_id: Identifier
    digest: Digest | None = None
    index: Count
    total_chunks: Annotated[int, Field(ge=1, le=2**32)]
    total_size: Count = Field(description="The whole blob's size in bytes.")
    offset: Count = Field(description="Where this chunk starts in the blob, in bytes.")
    data: bytes
    reply_to: Identifier | None = None
    encoding: Literal["identity", "zstd"] = "identity"
    """How ``data`` holds the chunk's bytes: as they are, or as one zstd frame
    that declares its size (the data plane compresses chunks itself, fast)."""

    @model_validator(mode="after")
    def _index_in_range(self) -> DataChunk:
        if self.index >= self.total_chunks:
            raise ValueError("chunk index must be below total_chunks")
        if self.offset + len(self.data) > self.total_size:
            raise ValueError("chunk extends past the blob's total size")
        if self.digest is None and self.index == self.total_chunks - 1:
            raise ValueError("the last chunk of a blob carries its digest")
        return self


class CheckData(Message):
    """Ask the store what it holds of a blob before uploading it.

    Schema version 2: asked by ``digest`` (the blob's SHA-256) or, before the
    sender has hashed it all, by ``fingerprint`` (see
    :func:`boson_shared.transfer.chunks.fingerprint`) — exactly one of the two.
    Asked by fingerprint, the :class:`DataStatus` answer's ``digest`` is that
    fingerprint, its ``present`` says that a stored blob has it, and its
    ``received`` lists the chunks held of the upload; either one means "ask
    again by digest". Neither means the content is new to the store: stream it.
    """

    kind: Literal["data.check"] = "data.check"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: asked by digest only
    digest: Digest | None = None
    fingerprint: Digest | None = None
    upload_id: Identifier
    reply_to: Identifier

    @model_validator(mode="after")
    def _digest_or_fingerprint(self) -> CheckData:
        if (self.digest is None) == (self.fingerprint is None):
            raise ValueError("CheckData asks by digest or by fingerprint, exactly one")
        return self


class DataStatus(Message):
    """The store's answer to :class:`CheckData`: present, or which chunks it has."""

    kind: Literal["data.status"] = "data.status"
    digest: Digest
    upload_id: Identifier
    present: bool
    received: tuple[Count, ...] = ()


class FetchData(Message):
    """Ask the transfer service to stream a stored blob back as chunks."""

    kind: Literal["data.fetch"] = "data.fetch"
    request_id: Identifier
    digest: Digest
    reply_to: Identifier
    chunk_size: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = Field(
        default=1024 * 1024, description="Bytes per chunk of the reply."
    )


class DataStored(Message):
    """A blob is stored and its digest verified."""

    kind: Literal["data.stored"] = "data.stored"
    upload_id: Identifier
    digest: Digest
    size: Count = Field(description="The blob's size in bytes.")
    already_present: bool = False
    stored_at: Timestamp = Field(default_factory=now)


class BlobsReferenced(Message):
    """The blobs the unexpired task records still refer to, as of ``as_of``.

    The monitor publishes it after each retention sweep; the transfer service
    deletes the blobs it holds that are in no such list and are older than
    its grace period. ``complete`` is false when the list was cut short: then
    nothing may be deleted on its strength.
    """

    kind: Literal["blobs.referenced"] = "blobs.referenced"
    as_of: Timestamp
    digests: tuple[Digest, ...]
    complete: bool = True


__all__ = [
    "BlobsReferenced",
    "CheckData",
    "DataChunk",
    "DataRef",
    "DataStatus",
    "DataStored",
    "FetchData",
]
