"""The receiver side of a fetch: ``FetchData`` → chunks → verified bytes, cached.

The transfer service streams a blob back as :class:`DataChunk` s on the
fetcher's reply queue (keyed by the request id), or answers
``DataStatus(present=False)`` when it does not hold it. The fetcher places
each chunk at its offset, checks the layout (every byte covered once), checks
the SHA-256 of the whole against the reference, and keeps the result in a
bounded LRU cache. Concurrent fetches of one blob share one transfer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass

from boson_shared.contract.messages import DataChunk, DataRef, DataStatus, FetchData, new_id
from boson_shared.contract.topology import RK_DATA_REQUEST, Names
from boson_shared.runtime.publisher import BatchingPublisher, Route
from boson_shared.transfer.chunks import ChunkCoder, TransferOptions, sha256_hex
from boson_shared.transfer.errors import (
    BlobNotFoundError,
    ChunkConflictError,
    DigestMismatchError,
    TransferTimeoutError,
)
from boson_shared.transfer.replies import DataReplies, DataReply

logger = logging.getLogger(__name__)


class BlobCache:
    """Blobs by digest, least recently used evicted first, bounded in bytes."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.size = 0
        self._blobs: OrderedDict[str, bytes] = OrderedDict()

    def get(self, digest: str) -> bytes | None:
        blob = self._blobs.get(digest)
        if blob is not None:
            self._blobs.move_to_end(digest)
        return blob

    def put(self, digest: str, blob: bytes) -> None:
        if len(blob) > self.capacity or digest in self._blobs:
            return
        self._blobs[digest] = blob
        self.size += len(blob)
        while self.size > self.capacity:
            _, evicted = self._blobs.popitem(last=False)
            self.size -= len(evicted)

    def __len__(self) -> int:
        return len(self._blobs)


@dataclass
class FetchStats:
    fetches: int = 0
    cache_hits: int = 0
    chunks: int = 0


class _Assembly:
    """One blob being put back together from chunks."""

    def __init__(self, ref: DataRef) -> None:
        self.ref = ref
        self.buffer = bytearray(ref.size)
        self.covered: dict[int, tuple[int, int]] = {}
        self.total: int | None = None

    def place(self, chunk: DataChunk, raw: bytes) -> None:
        ref = self.ref
        if chunk.digest != ref.digest or chunk.total_size != ref.size:
            raise ChunkConflictError("a fetched chunk names another blob")
        if self.total is None:
            self.total = chunk.total_chunks
        elif chunk.total_chunks != self.total:
            raise ChunkConflictError("fetched chunks disagree on their count")
        end = chunk.offset + len(raw)
        if end > ref.size:
            raise ChunkConflictError("a fetched chunk extends past the blob")
        span = (chunk.offset, len(raw))
        known = self.covered.get(chunk.index)
        if known is not None:
            if known != span:
                raise ChunkConflictError(f"chunk {chunk.index} arrived twice with other bounds")
            return
        self.buffer[chunk.offset : end] = raw
        self.covered[chunk.index] = span

    @property
    def complete(self) -> bool:
        return self.total is not None and len(self.covered) == self.total

    def verify_layout(self) -> None:
        position = 0
        for offset, size in sorted(self.covered.values()):
            if offset != position:
                raise ChunkConflictError("fetched chunks overlap or leave a gap")
            position += size
        if position != self.ref.size:
            raise ChunkConflictError("fetched chunks do not cover the blob")


class Fetcher:
    """Fetches blobs by reference for one reply queue."""

    def __init__(
        self,
        publisher: BatchingPublisher,
        names: Names,
        replies: DataReplies,
        reply_to: str,
        options: TransferOptions | None = None,
    ) -> None:
        self.options = options or TransferOptions()
        self._publisher = publisher
        self._names = names
        self._replies = replies
        self._reply_to = reply_to
        self._coder = ChunkCoder(max_chunk_bytes=max(self.options.chunk_size, 1024 * 1024))
        self.cache = BlobCache(self.options.cache_bytes)
        self._in_flight: dict[str, asyncio.Future[bytes]] = {}
        self.stats = FetchStats()

    async def fetch(self, ref: DataRef) -> bytes:
        """The bytes ``ref`` names, verified; from the cache when held."""
        cached = self.cache.get(ref.digest)
        if cached is not None and len(cached) == ref.size:
            self.stats.cache_hits += 1
            return cached
        shared = self._in_flight.get(ref.digest)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._in_flight[ref.digest] = future
        try:
            blob = await self._fetch(ref)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning without sharers
            raise
        finally:
            self._in_flight.pop(ref.digest, None)
        future.set_result(blob)
        self.cache.put(ref.digest, blob)
        return blob

    async def _fetch(self, ref: DataRef) -> bytes:
        self.stats.fetches += 1
        for attempt in range(1, self.options.fetch_attempts + 1):
            request_id = new_id()
            with self._replies.subscribe(request_id) as inbox:
                request = FetchData(
                    request_id=request_id,
                    digest=ref.digest,
                    reply_to=self._reply_to,
                    chunk_size=self.options.chunk_size,
                )
                await self._publisher.publish(
                    Route(self._names.work_exchange, RK_DATA_REQUEST, mandatory=True), request
                )
                assembly = _Assembly(ref)
                try:
                    await self._receive(inbox, assembly)
                except TimeoutError:
                    logger.info("fetch of %s stalled (attempt %d)", ref.digest[:12], attempt)
                    continue
            assembly.verify_layout()
            blob = bytes(assembly.buffer)
            if await asyncio.to_thread(sha256_hex, blob) != ref.digest:
                raise DigestMismatchError(f"fetched blob {ref.digest[:12]}… does not match")
            return blob
        raise TransferTimeoutError(
            f"fetch of {ref.digest[:12]}… got no chunk for {self.options.fetch_idle_timeout_s:g}s "
            f"in {self.options.fetch_attempts} attempts"
        )

    async def _receive(self, inbox: asyncio.Queue[DataReply], assembly: _Assembly) -> None:
        while not assembly.complete:
            async with asyncio.timeout(self.options.fetch_idle_timeout_s):
                reply = await inbox.get()
            if isinstance(reply, DataStatus) and not reply.present:
                raise BlobNotFoundError(f"the store holds no blob {assembly.ref.digest}")
            if isinstance(reply, DataChunk):
                raw = await asyncio.to_thread(self._coder.decode, reply.encoding, reply.data)
                assembly.place(reply, raw)
                self.stats.chunks += 1


__all__ = ["BlobCache", "FetchStats", "Fetcher"]
