"""Wiring of the transfer service: its queues, the blob store, garbage collection, retention."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from boson_services.transfer.handlers import TransferHandlers
from boson_services.transfer.memory import retain_freed_memory
from boson_services.transfer.settings import TransferSettings
from boson_services.transfer.store import BlobStore
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import BlobsReferenced, CheckData, DataChunk, FetchData
from boson_shared.contract.topology import RK_BLOBS_REFERENCED, Topology
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit
from boson_shared.runtime.service import Periodic, Service
from boson_shared.transfer.chunks import ChunkCoder
from boson_shared.transfer.sender import ChunkSender

logger = logging.getLogger(__name__)

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

        self.events_queue = self.names.subscriber_queue(self.name, settings.instance_id)
        self.blobs_deleted = 0

    def topology(self) -> Topology:
        expires_ms = int(self.transfer_settings.subscriber_expires_s * 1000)
        return self.names.transfer() + self.names.subscriber(
            self.name, self.settings.instance_id, [RK_BLOBS_REFERENCED], expires_ms
        )

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
            ConsumerSpec(
                queue=self.events_queue,
                accepts=(BlobsReferenced,),
                handler=self.on_blobs_referenced,
                prefetch=1,
            ),
        ]

    async def on_blobs_referenced(self, message: BlobsReferenced) -> Sequence[Emit]:
        """Retention: delete the blobs no unexpired task record refers to."""
        if not message.complete:
            logger.info("blob list cut short by the record: nothing deleted this round")
            return []
        older_than = message.as_of - self.transfer_settings.blob_grace_s
        removed = await asyncio.to_thread(
            self.store.delete_unreferenced, frozenset(message.digests), older_than
        )
        self.blobs_deleted += removed
        if removed:
            logger.info("deleted %d blobs no task record refers to", removed)
        return []

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
            blobs_deleted=self.blobs_deleted,
        )
        return body


def create(settings: TransferSettings, transport: Transport, codec: Codec) -> TransferService:
    """The service for a process of its own (``boson run``, ``python -m``)."""
    retain_freed_memory(settings.malloc_retain_bytes)
    return TransferService(settings, transport, codec)


__all__ = ["TransferService", "create"]
