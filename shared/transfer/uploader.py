"""The sender side of an upload: ask first, send what is missing, wait for ``DataStored``.

1. Hash the data (SHA-256, off the event loop): that is its address.
2. ``CheckData``: the store answers with :class:`DataStatus` — present (send
   nothing), or the indices it already holds of this upload (a resumed one).
3. Send the missing chunks (:class:`~shared.transfer.sender.ChunkSender`).
4. Wait for ``DataStored``. If it does not come in time, or the store threw
   the upload away (its digest did not match), go back to 2 — a bounded
   number of rounds, then :class:`TransferTimeoutError`.

The upload id is derived from the digest and chunk size, so an uploader that
was killed halfway and one that tries again later resume the same upload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from shared.bus.abc import Transport
from shared.contract.codec import Codec
from shared.contract.messages import CheckData, DataRef, DataStatus, DataStored
from shared.contract.topology import RK_DATA_CHUNK, RK_DATA_REQUEST, Names
from shared.runtime.publisher import BatchingPublisher, Route
from shared.transfer.chunks import (
    ChunkCoder,
    TransferOptions,
    chunk_count,
    sha256_hex,
    spans,
    upload_id_for,
)
from shared.transfer.errors import TransferTimeoutError
from shared.transfer.replies import DataReplies, DataReply
from shared.transfer.sender import ChunkSender

logger = logging.getLogger(__name__)


@dataclass
class UploadStats:
    """What uploads did, for tests and benchmarks."""

    uploads: int = 0
    already_present: int = 0
    resumed: int = 0
    rounds: int = 0


@dataclass(frozen=True)
class UploadReport:
    """One upload's outcome."""

    ref: DataRef
    chunks_sent: int
    already_present: bool
    seconds: float


class Uploader:
    """Uploads blobs through the transfer service for one reply queue."""

    def __init__(
        self,
        transport: Transport,
        codec: Codec,
        publisher: BatchingPublisher,
        names: Names,
        replies: DataReplies,
        reply_to: str,
        options: TransferOptions | None = None,
    ) -> None:
        self.options = options or TransferOptions()
        self._transport = transport
        self._publisher = publisher
        self._names = names
        self._replies = replies
        self._reply_to = reply_to
        self._declared = False
        coder = ChunkCoder(level=self.options.zstd_level, hash_log=self.options.zstd_hash_log)
        self.sender = ChunkSender(transport, codec, coder, window=self.options.window)
        self.stats = UploadStats()

    async def upload(self, data: bytes) -> DataRef:
        """Store ``data`` and return its reference (see the module docstring)."""
        return (await self.upload_report(data)).ref

    async def upload_report(self, data: bytes, *, stop_after: int | None = None) -> UploadReport:
        """:meth:`upload` with what it took. ``stop_after`` sends at most that
        many chunks and returns without waiting (an interrupted upload, for tests)."""
        started = time.perf_counter()
        await self._declare()
        digest = await asyncio.to_thread(sha256_hex, data)
        ref = DataRef(digest=digest, size=len(data))
        chunk_size = self.options.chunk_size
        upload_id = upload_id_for(digest, chunk_size)
        total = chunk_count(len(data), chunk_size)
        sent = 0
        self.stats.uploads += 1
        with self._replies.subscribe(upload_id) as inbox:
            for _ in range(self.options.rounds):
                self.stats.rounds += 1
                status = await self._check(inbox, digest, upload_id)
                if status is None or status.present:
                    if sent == 0:
                        self.stats.already_present += 1
                    return UploadReport(ref, sent, sent == 0, time.perf_counter() - started)
                held = set(status.received)
                if held and sent == 0:
                    self.stats.resumed += 1
                missing = [span for span in spans(len(data), chunk_size) if span.index not in held]
                if stop_after is not None:
                    missing = missing[: max(0, stop_after - sent)]
                before = self.sender.stats.chunks
                try:
                    await self.sender.send(
                        Route(self._names.work_exchange, RK_DATA_CHUNK),
                        missing,
                        read=lambda span: data[span.offset : span.offset + span.size],
                        total_size=len(data),
                        upload_id=upload_id,
                        digest=digest,
                        total_chunks=total,
                        reply_to=self._reply_to,
                        mandatory=True,
                    )
                finally:
                    sent += self.sender.stats.chunks - before
                if stop_after is not None:
                    return UploadReport(ref, sent, False, time.perf_counter() - started)
                if await self._await_stored(inbox, len(data)):
                    return UploadReport(ref, sent, False, time.perf_counter() - started)
                logger.info("upload %s not confirmed stored; asking again", upload_id[:16])
        raise TransferTimeoutError(
            f"upload of {len(data)} bytes ({digest[:12]}…) not stored after "
            f"{self.options.rounds} rounds"
        )

    async def _declare(self) -> None:
        # Chunks are published `mandatory`: the queues must exist before the
        # first one, whether or not the transfer service has started yet.
        if not self._declared:
            await self._transport.declare(self._names.transfer())
            self._declared = True

    async def _check(
        self, inbox: asyncio.Queue[DataReply], digest: str, upload_id: str
    ) -> DataStatus | None:
        """The store's status of this upload; None when a DataStored says it is done."""
        check = CheckData(digest=digest, upload_id=upload_id, reply_to=self._reply_to)
        await self._publisher.publish(Route(self._names.work_exchange, RK_DATA_REQUEST), check)
        try:
            async with asyncio.timeout(self.options.check_timeout_s):
                while True:
                    reply = await inbox.get()
                    if isinstance(reply, DataStored):
                        return None
                    if isinstance(reply, DataStatus):
                        return reply
        except TimeoutError:
            raise TransferTimeoutError(
                f"the transfer service did not answer CheckData within "
                f"{self.options.check_timeout_s:g}s"
            ) from None

    async def _await_stored(self, inbox: asyncio.Queue[DataReply], size: int) -> bool:
        """True on DataStored; False on a rejection or silence (ask again)."""
        # Generous for large blobs: the store hashes and syncs them before it answers.
        timeout = self.options.stored_timeout_s + size / (20 * 1024 * 1024)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    reply = await inbox.get()
                    if isinstance(reply, DataStored):
                        return True
                    if isinstance(reply, DataStatus):
                        if reply.present:
                            return True
                        if not reply.received:
                            # The store discarded the upload (its digest did
                            # not match): the next round sends it all again.
                            logger.warning("store rejected upload %s", reply.upload_id[:16])
                            return False
        except TimeoutError:
            return False


__all__ = ["UploadReport", "UploadStats", "Uploader"]
