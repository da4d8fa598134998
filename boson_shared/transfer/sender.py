"""Publishing chunks fast: encode off the event loop, a window of confirms in flight.

Chunk envelopes are large (up to a chunk each), so they skip the batching
publisher: each is compressed (if it pays), encrypted and sealed in a worker
thread — zstd, hashlib and AES release the GIL — and published on its own,
with up to ``window`` chunks being encoded or awaiting their confirm at once.

A streamed upload does not know its digest when its first chunks leave: it
passes a future of it, and only the blob's last chunk waits for it and carries
it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import DataChunk
from boson_shared.contract.topology import HEADER_KIND
from boson_shared.runtime.publisher import Route
from boson_shared.transfer.chunks import ChunkCoder, Span

_KIND = DataChunk.model_fields["kind"].default
_EXCLUDE_KIND = {"kind"}


@dataclass
class SenderStats:
    """What crossed: chunks, raw bytes, and bytes after chunk encoding."""

    chunks: int = 0
    raw_bytes: int = 0
    sent_bytes: int = 0


class ChunkSender:
    """Sends chunks of blobs, each chunk encoded in a worker thread."""

    def __init__(
        self, transport: Transport, codec: Codec, coder: ChunkCoder, *, window: int
    ) -> None:
        self._transport = transport
        self._codec = codec
        self._coder = coder
        self._window = window
        self.stats = SenderStats()

    async def send(
        self,
        route: Route,
        chunks: Iterable[Span],
        *,
        read: Callable[[Span], bytes | memoryview],
        total_size: int,
        upload_id: str,
        digest: str | asyncio.Future[str],
        total_chunks: int,
        reply_to: str | None,
        mandatory: bool,
    ) -> None:
        """Publish ``chunks`` (their bytes from ``read``, called in a worker thread);
        returns once every one is confirmed.

        ``digest`` is the blob's SHA-256, or a future of it: then chunks leave
        without it, and the last chunk of the blob waits for it and carries it.
        """
        slots = asyncio.Semaphore(self._window)
        last = total_chunks - 1

        def encode(span: Span, digest: str | None) -> tuple[bytes, int]:
            raw = read(span)
            encoding, payload = self._coder.encode(raw)
            # The model checks the chunk's fields; its bytes join the item
            # as they are (a view of the blob is not copied into the model).
            fields = DataChunk(
                upload_id=upload_id,
                digest=digest,
                index=span.index,
                total_chunks=total_chunks,
                total_size=total_size,
                offset=span.offset,
                data=b"",
                reply_to=reply_to,
                encoding=encoding,
            ).model_dump(mode="python", exclude=_EXCLUDE_KIND)
            fields["data"] = payload
            return self._codec.encode_raw(_KIND, [fields]), len(payload)

        async def send_one(span: Span) -> None:
            try:
                known: str | None = None
                if isinstance(digest, str):
                    known = digest
                elif span.index == last:
                    known = await digest
                body, sent = await asyncio.to_thread(encode, span, known)
                await self._transport.publish(
                    route.exchange,
                    route.routing_key,
                    body,
                    headers={HEADER_KIND: _KIND},
                    mandatory=mandatory,
                )
                self.stats.chunks += 1
                self.stats.raw_bytes += span.size
                self.stats.sent_bytes += sent
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for span in chunks:
                await slots.acquire()
                group.create_task(send_one(span))


__all__ = ["ChunkSender", "SenderStats"]
