"""Wiring of the transfer service: its two queues, the blob store, garbage collection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from boson_services.transfer.handlers import TransferHandlers
from boson_services.transfer.memory import retain_freed_memory
from boson_services.transfer.settings import TransferSettings
from boson_services.transfer.store import BlobStore
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import CheckData, DataChunk, FetchData
from boson_shared.contract.topology import Topology
from boson_shared.runtime.consumer import ConsumerSpec
from boson_shared.runtime.service import Periodic, Service
from boson_shared.transfer.chunks import ChunkCoder
from boson_shared.transfer.sender import ChunkSender

_DECODE_IN_THREAD_ABOVE = 64 * 1024


class TransferService(Service):
    name = "transfer"

    def __init__(self, settings: TransferSettings, transport: Transport, codec: Codec) -> None:
        super().__init__(settings, transport, codec)
        self.transfer_settings = settings
        self.store = BlobStore(
            settings.blob_dir,
            max_blob_bytes=settings.max_blob_bytes,
            hash_window_bytes=settings.hash_window_bytes,
            fsync=settings.fsync,
        )
        coder = ChunkCoder(
            level=settings.chunk_zstd_level,
            hash_log=settings.chunk_zstd_hash_log,
            max_chunk_bytes=settings.max_chunk_bytes,
        )
        self.handlers = TransferHandlers(
            self.store,
            self.names,
            coder,
            ChunkSender(transport, codec, coder, window=settings.fetch_window),
            max_chunk_bytes=settings.max_chunk_bytes,
        )

    def topology(self) -> Topology:
        return self.names.transfer()

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        settings = self.transfer_settings
        return [
            ConsumerSpec(
                queue=self.names.chunks_queue,
                accepts=(DataChunk,),
                handler=self.handlers.on_chunk,
                prefetch=settings.chunk_prefetch,
                # A chunk envelope is up to a MiB: decrypting and unpacking
                # it on the loop made the service lag behind the stream.
                decode_in_thread_above_bytes=_DECODE_IN_THREAD_ABOVE,
            ),
            ConsumerSpec(
                queue=self.names.data_requests_queue,
                accepts=(CheckData, FetchData),
                handler=self.handlers.on_request,
                prefetch=settings.request_prefetch,
            ),
        ]

    def background(self) -> Sequence[tuple[float, Periodic]]:
        return [(self.transfer_settings.gc_interval_s, self.collect_garbage)]

    async def on_start(self) -> None:
        await asyncio.to_thread(self.store.open)

    async def on_stop(self) -> None:
        self.store.close()

    async def collect_garbage(self) -> None:
        await asyncio.to_thread(self.store.collect_garbage, self.transfer_settings.staging_ttl_s)

    def health(self) -> dict[str, Any]:
        body = super().health()
        stats = self.handlers.stats
        body.update(
            blob_dir=str(self.store.root),
            stored=stats.stored,
            chunks=stats.chunks,
            duplicates=stats.duplicates,
            digest_mismatches=stats.digest_mismatches,
            fetches=stats.fetches,
        )
        return body


def create(settings: TransferSettings, transport: Transport, codec: Codec) -> TransferService:
    """The service for a process of its own (``boson run``, ``python -m``)."""
    retain_freed_memory(settings.malloc_retain_bytes)
    return TransferService(settings, transport, codec)


__all__ = ["TransferService", "create"]
