"""The transfer service's settings (``BOSON_`` variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from boson_shared.settings import BosonSettings

_MIB = 1024 * 1024


class TransferSettings(BosonSettings):
    blob_dir: Path = Field(default_factory=lambda: Path.home() / ".local/share/boson/blobs")
    """``BOSON_BLOB_DIR``: the blob store (``blobs/`` and ``staging/`` inside).
    Replicas share it through a shared volume; containers mount one here."""
    max_chunk_bytes: Annotated[int, Field(ge=1024, le=64 * _MIB)] = 8 * _MIB
    """A decoded chunk larger than this is refused (senders use 1 MiB)."""
    max_blob_bytes: Annotated[int, Field(ge=1)] = 64 * 1024 * _MIB
    staging_ttl_s: Annotated[float, Field(gt=0)] = 3600.0
    """A partial upload untouched this long is garbage-collected."""
    gc_interval_s: Annotated[float, Field(gt=0)] = 60.0
    blob_grace_s: Annotated[float, Field(ge=0)] = 3600.0
    """A stored blob no unexpired task record refers to is deleted once it is
    this old (the monitor's :class:`BlobsReferenced` says which are referred to)."""
    subscriber_expires_s: Annotated[float, Field(gt=0)] = 600.0
    chunk_prefetch: Annotated[int, Field(ge=1, le=1024)] = 32
    """Chunks held unacked at once (each up to a chunk of memory)."""
    request_prefetch: Annotated[int, Field(ge=1, le=1024)] = 16
    fetch_window: Annotated[int, Field(ge=1, le=256)] = 8
    """Chunks of a fetch reply being encoded or awaiting their confirm at once."""
    chunk_zstd_level: Annotated[int, Field(ge=-5, le=19)] = 1
    """zstd level of fetched chunks (where compression pays)."""
    chunk_zstd_hash_log: Annotated[int, Field(ge=6, le=30)] | None = 10
    """Its hash table size (log2 entries; None: the level's own).

    See :mod:`boson_shared.transfer.chunks`."""
    fsync: bool = True
    """Sync a blob to disk before announcing it stored."""
    malloc_retain_bytes: Annotated[int, Field(ge=0, lt=2**31)] = 64 * _MIB
    """Freed memory the service process keeps for reuse (0: leave malloc as it
    is). Chunk buffers then stop faulting their pages in anew; see
    boson_services.transfer.memory. Applied by ``boson run transfer`` and
    ``python -m boson_services.transfer``, not by an embedded service."""
    hash_window_bytes: Annotated[int, Field(ge=0)] = 64 * _MIB
    """Out-of-order chunks held in memory per upload to hash the blob as it
    arrives; past it, the blob is hashed from disk at the end."""


__all__ = ["TransferSettings"]
