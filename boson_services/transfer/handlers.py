"""The transfer service's handlers: chunks in → staged, verified, stored; requests answered.

* ``DataChunk`` (work queue ``transfer.chunks``): decode the chunk's bytes,
  check they fit the upload's layout, write them to staging (hashing them as
  they come in order). Once all are there and the digest is known (a streamed
  upload's last chunk carries it), verify the SHA-256 and move the blob into
  the store, then announce ``DataStored`` to each uploader
  (``data.stored.<client>``). A blob whose digest does not match is discarded
  and its uploaders are told (``DataStatus(present=False, received=())``) so
  they send it again.
* ``CheckData`` by digest: what the store holds of an upload — present, or
  the chunk indices already staged (the uploader sends only the rest). By
  fingerprint: whether a stored blob has it, and the indices staged; neither
  tells the uploader its content is new, so it streams it.
* ``FetchData``: stream a stored blob back as chunks on ``data.reply.<client>``,
  or ``DataStatus(present=False)`` when it is not held.

Bad chunks raise :class:`~boson_shared.transfer.errors.ChunkRejectedError` (a
``DecodeError``): the runtime dead-letters them with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from boson_services.transfer.store import BlobStore
from boson_services.transfer.upload import Upload
from boson_shared.contract.messages import CheckData, DataChunk, DataStatus, DataStored, FetchData
from boson_shared.contract.topology import Names, rk_data_reply, rk_data_stored
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route
from boson_shared.transfer.chunks import ChunkCoder, chunk_count, spans
from boson_shared.transfer.errors import BlobTooLargeError, DigestMismatchError
from boson_shared.transfer.sender import ChunkSender

logger = logging.getLogger(__name__)

_STORED_IDS = 4096


@dataclass
class TransferStats:
    """Counters for health, tests and benchmarks."""

    chunks: int = 0
    duplicates: int = 0
    chunk_bytes: int = 0
    stored: int = 0
    already_present: int = 0
    digest_mismatches: int = 0
    checks: int = 0
    fetches: int = 0
    not_found: int = 0
    fingerprint_hits: int = 0


class TransferHandlers:
    """Typed data-plane messages in, replies out."""

    def __init__(
        self,
        store: BlobStore,
        names: Names,
        coder: ChunkCoder,
        sender: ChunkSender,
        *,
        max_chunk_bytes: int,
    ) -> None:
        self.store = store
        self.names = names
        self.coder = coder
        self.sender = sender
        self.max_chunk_bytes = max_chunk_bytes
        self.stats = TransferStats()
        self._finalizing: dict[str, asyncio.Lock] = {}
        # Upload ids stored lately: a digest-less chunk of one (redelivered)
        # is a duplicate, not the start of a new upload.
        self._stored_ids: OrderedDict[str, None] = OrderedDict()

    # -- uploads -----------------------------------------------------------

    async def on_chunk(self, chunk: DataChunk) -> Sequence[Emit]:
        if chunk.total_size > self.store.max_blob_bytes:
            raise BlobTooLargeError(
                f"an upload of {chunk.total_size} bytes exceeds the limit of "
                f"{self.store.max_blob_bytes}"
            )
        if chunk.digest is None:
            if chunk.upload_id in self._stored_ids:
                self.stats.duplicates += 1
                return []
        elif self.store.has(chunk.digest):
            # Stored meanwhile (another uploader, or a resend): nothing to keep.
            self.stats.duplicates += 1
            if chunk.reply_to is not None and chunk.index == chunk.total_chunks - 1:
                # Remembered first: a digest-less chunk of it handled while
                # the staging is dropped must not start a new one.
                self._remember_stored(chunk.upload_id)
                await asyncio.to_thread(self.store.settle, chunk.upload_id, chunk.digest)
                return [
                    self._stored(
                        chunk.upload_id,
                        chunk.digest,
                        chunk.total_size,
                        chunk.reply_to,
                        already_present=True,
                    )
                ]
            return []
        upload = self.store.upload(
            chunk.upload_id, chunk.digest, chunk.total_size, chunk.total_chunks
        )
        assert upload is not None  # created when sizes are given
        if chunk.reply_to is not None:
            upload.reply_tos.add(chunk.reply_to)
        fresh = await asyncio.to_thread(self._decode_and_write, upload, chunk)
        if fresh:
            self.stats.chunks += 1
            self.stats.chunk_bytes += len(chunk.data)
        else:
            self.stats.duplicates += 1
        if upload.ready and not upload.done:
            return await self._finalize(upload)
        return []

    def _decode_and_write(self, upload: Upload, chunk: DataChunk) -> bool:
        raw = self.coder.decode(chunk.encoding, chunk.data)
        return upload.write(chunk.index, chunk.offset, raw)

    async def _finalize(self, upload: Upload) -> list[Emit]:
        lock = self._finalizing.setdefault(upload.upload_id, asyncio.Lock())
        async with lock:
            if upload.done:
                return []
            digest = upload.digest
            assert digest is not None  # finalized only when ready
            try:
                await asyncio.to_thread(
                    upload.finalize,
                    self.store.blob_path(digest),
                    fsync=self.store.fsync,
                    fingerprints=self.store.fingerprints,
                )
            except DigestMismatchError as error:
                self.stats.digest_mismatches += 1
                logger.warning("%s", error)
                self.store.forget(upload.upload_id)
                self._finalizing.pop(upload.upload_id, None)
                return [
                    self._reply(
                        reply_to,
                        DataStatus(digest=digest, upload_id=upload.upload_id, present=False),
                    )
                    for reply_to in sorted(upload.reply_tos)
                ]
            self.store.forget(upload.upload_id)
            self._finalizing.pop(upload.upload_id, None)
            self._remember_stored(upload.upload_id)
            self.stats.stored += 1
            logger.info("stored %s (%d bytes)", digest[:12], upload.total_size)
            return [
                self._stored(upload.upload_id, digest, upload.total_size, reply_to)
                for reply_to in sorted(upload.reply_tos)
            ]

    def _remember_stored(self, upload_id: str) -> None:
        self._stored_ids[upload_id] = None
        if len(self._stored_ids) > _STORED_IDS:
            self._stored_ids.popitem(last=False)

    def _stored(
        self,
        upload_id: str,
        digest: str,
        size: int,
        reply_to: str,
        *,
        already_present: bool = False,
    ) -> Emit:
        stored = DataStored(
            upload_id=upload_id, digest=digest, size=size, already_present=already_present
        )
        return Emit(Route.reply(self.names, rk_data_stored(reply_to)), stored)

    def _reply(self, reply_to: str, status: DataStatus) -> Emit:
        return Emit(Route.reply(self.names, rk_data_reply(reply_to)), status)

    # -- requests ----------------------------------------------------------

    async def on_request(self, request: CheckData | FetchData) -> Sequence[Emit]:
        if isinstance(request, CheckData):
            return await self.on_check(request)
        return await self.on_fetch(request)

    async def on_check(self, check: CheckData) -> Sequence[Emit]:
        self.stats.checks += 1
        if check.digest is None:
            assert check.fingerprint is not None  # the message asks by one of the two
            return await self._check_fingerprint(check, check.fingerprint)
        status = DataStatus(digest=check.digest, upload_id=check.upload_id, present=True)
        if self.store.has(check.digest):
            self.stats.already_present += 1
            return [self._reply(check.reply_to, status)]
        upload = await asyncio.to_thread(self.store.upload, check.upload_id, check.digest)
        if upload is None:
            return [self._reply(check.reply_to, status.model_copy(update={"present": False}))]
        upload.reply_tos.add(check.reply_to)
        # Chunks another replica wrote to the shared volume count too.
        await asyncio.to_thread(upload.load_log)
        if upload.ready and not upload.done:
            return await self._finalize(upload)
        received = tuple(sorted(upload.received))
        return [
            self._reply(
                check.reply_to,
                DataStatus(
                    digest=check.digest, upload_id=check.upload_id, present=False, received=received
                ),
            )
        ]

    async def _check_fingerprint(self, check: CheckData, print_: str) -> Sequence[Emit]:
        """Might the store hold this content, or part of it? (It answers for the
        fingerprint; a yes sends the uploader to hash it all and ask by digest.)"""
        present = await asyncio.to_thread(self.store.has_fingerprint, print_)
        received: tuple[int, ...] = ()
        if present:
            self.stats.fingerprint_hits += 1
        else:
            upload = await asyncio.to_thread(self.store.upload, check.upload_id, None)
            if upload is not None:
                await asyncio.to_thread(upload.load_log)
                received = tuple(sorted(upload.received))
        status = DataStatus(
            digest=print_, upload_id=check.upload_id, present=present, received=received
        )
        return [self._reply(check.reply_to, status)]

    async def on_fetch(self, fetch: FetchData) -> Sequence[Emit]:
        self.stats.fetches += 1
        digest = fetch.digest
        if not self.store.has(digest):
            self.stats.not_found += 1
            missing = DataStatus(digest=digest, upload_id=fetch.request_id, present=False)
            return [self._reply(fetch.reply_to, missing)]
        size = await asyncio.to_thread(self.store.size, digest)
        chunk_size = min(fetch.chunk_size, self.max_chunk_bytes)
        # Streamed here rather than returned as effects: a blob is many
        # chunks, encoded one by one off the loop, never all in memory.
        await self.sender.send(
            Route(self.names.events_exchange, rk_data_reply(fetch.reply_to)),
            spans(size, chunk_size),
            read=lambda span: self.store.read(digest, span.offset, span.size),
            total_size=size,
            upload_id=fetch.request_id,
            digest=digest,
            total_chunks=chunk_count(size, chunk_size),
            reply_to=None,
            mandatory=False,
        )
        return []


__all__ = ["TransferHandlers", "TransferStats"]
