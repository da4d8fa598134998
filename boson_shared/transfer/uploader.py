"""The sender side of an upload: ask first, stream what is new, wait for ``DataStored``.

1. Fingerprint the data (:func:`~boson_shared.transfer.chunks.fingerprint`: the
   size, the first and the last MiB — cheap whatever the size) and ask the
   store by it (``CheckData``).
2. The store knows nothing of it: the content is new. Stream every chunk at
   once while the whole blob is hashed in a worker thread alongside; the last
   chunk waits for that digest and carries it. No chunk waits for the hash.
3. The store knows the fingerprint (a stored blob has it, or a partial
   upload of it is staged): hash the whole blob first and ask again by its
   SHA-256 — present (send nothing), or the indices it already holds (send
   only the rest).
4. Wait for ``DataStored``. If it does not come in time, or the store threw
   the upload away (its digest did not match), go back to 3 — a bounded
   number of rounds, then :class:`TransferTimeoutError`.

The upload id is derived from the fingerprint and chunk size, so an uploader
that was killed halfway and one that tries again later resume the same
upload. Content that merely shares a fingerprint (same size, first and last
MiB) shares that staging when both stream at once; the store's digest check
keeps a mixed blob out. Rounds that ask by digest then use an id derived
from the digest (all but one that resumes the fingerprint's staging), so the
two never fight over one staging again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import CheckData, DataRef, DataStatus, DataStored
from boson_shared.contract.topology import RK_DATA_CHUNK, RK_DATA_REQUEST, Names
from boson_shared.runtime.publisher import BatchingPublisher, Route
from boson_shared.transfer.chunks import (
    ChunkCoder,
    Span,
    TransferOptions,
    chunk_count,
    fingerprint,
    sha256_hex,
    spans,
    upload_id_for,
)
from boson_shared.transfer.errors import TransferTimeoutError
from boson_shared.transfer.replies import DataReplies, DataReply
from boson_shared.transfer.sender import ChunkSender

logger = logging.getLogger(__name__)


@dataclass
class UploadStats:
    """What uploads did, for tests and benchmarks."""

    uploads: int = 0
    already_present: int = 0
    resumed: int = 0
    rounds: int = 0
    streamed: int = 0
    """Uploads whose chunks left before the blob was hashed (new content)."""


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
        chunk_size = self.options.chunk_size
        print_ = await asyncio.to_thread(fingerprint, data)
        streaming_id = upload_id_for(print_, chunk_size)
        sent = 0
        self.stats.uploads += 1
        view = memoryview(data)  # chunks are slices of it, never copies

        def report(digest: str, *, present: bool = False) -> UploadReport:
            ref = DataRef(digest=digest, size=len(data))
            return UploadReport(ref, sent, present, time.perf_counter() - started)

        async def send(
            upload_id: str, missing: list[Span], digest: str | asyncio.Future[str]
        ) -> None:
            nonlocal sent
            if stop_after is not None:
                missing = missing[: max(0, stop_after - sent)]
            before = self.sender.stats.chunks
            try:
                await self.sender.send(
                    Route(self._names.work_exchange, RK_DATA_CHUNK),
                    missing,
                    read=lambda span: view[span.offset : span.offset + span.size],
                    total_size=len(data),
                    upload_id=upload_id,
                    digest=digest,
                    total_chunks=chunk_count(len(data), chunk_size),
                    reply_to=self._reply_to,
                    mandatory=True,
                )
            finally:
                sent += self.sender.stats.chunks - before

        with contextlib.ExitStack() as inboxes:
            inbox = inboxes.enter_context(self._replies.subscribe(streaming_id))
            self.stats.rounds += 1
            status = await self._check(
                inbox,
                CheckData(fingerprint=print_, upload_id=streaming_id, reply_to=self._reply_to),
            )
            # Resume the staging under the fingerprint's id only if it holds
            # chunks; otherwise, and after any failed round, the digest's own
            # id: content that merely shares a fingerprint must not keep
            # throwing the other's staging away.
            resume = bool(status.received)
            rounds = self.options.rounds
            if not status.present and not status.received:
                self.stats.streamed += 1
                hashing = asyncio.ensure_future(asyncio.to_thread(sha256_hex, data))
                try:
                    await send(streaming_id, spans(len(data), chunk_size), hashing)
                finally:
                    digest = await hashing
                if stop_after is not None:
                    return report(digest)
                if await self._await_stored(inbox, digest, len(data)):
                    return report(digest)
                logger.info("upload %s not confirmed stored; asking again", streaming_id[:16])
                rounds -= 1
            else:
                digest = await asyncio.to_thread(sha256_hex, data)
            own_id = upload_id_for(digest, chunk_size)
            own_inbox = inboxes.enter_context(self._replies.subscribe(own_id))
            for _ in range(rounds):
                self.stats.rounds += 1
                upload_id, inbox = (streaming_id, inbox) if resume else (own_id, own_inbox)
                resume = False
                status = await self._check(
                    inbox, CheckData(digest=digest, upload_id=upload_id, reply_to=self._reply_to)
                )
                if status.present:
                    if sent == 0:
                        self.stats.already_present += 1
                    return report(digest, present=sent == 0)
                held = set(status.received)
                if held and sent == 0:
                    self.stats.resumed += 1
                await send(
                    upload_id,
                    [span for span in spans(len(data), chunk_size) if span.index not in held],
                    digest,
                )
                if stop_after is not None:
                    return report(digest)
                if await self._await_stored(inbox, digest, len(data)):
                    return report(digest)
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

    async def _check(self, inbox: asyncio.Queue[DataReply], check: CheckData) -> DataStatus:
        """The store's answer to ``check`` (by digest, a ``DataStored`` of it counts as present)."""
        await self._publisher.publish(
            Route(self._names.work_exchange, RK_DATA_REQUEST, mandatory=True), check
        )
        asked = check.fingerprint if check.digest is None else check.digest
        try:
            async with asyncio.timeout(self.options.check_timeout_s):
                while True:
                    reply = await inbox.get()
                    if isinstance(reply, DataStatus) and reply.digest == asked:
                        return reply
                    if isinstance(reply, DataStored) and reply.digest == check.digest:
                        return DataStatus(
                            digest=reply.digest, upload_id=reply.upload_id, present=True
                        )
        except TimeoutError:
            raise TransferTimeoutError(
                f"the transfer service did not answer CheckData within "
                f"{self.options.check_timeout_s:g}s"
            ) from None

    async def _await_stored(self, inbox: asyncio.Queue[DataReply], digest: str, size: int) -> bool:
        """True on DataStored; False on a rejection or silence (ask again)."""
        # Generous for large blobs: the store hashes and syncs them before it answers.
        timeout = self.options.stored_timeout_s + size / (20 * 1024 * 1024)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    reply = await inbox.get()
                    # Replies about other content sharing the upload id (the
                    # same fingerprint) are not about this upload.
                    if reply.digest != digest:
                        continue
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
