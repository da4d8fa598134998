"""One socket write per event-loop turn for an AMQP connection.

aiormq writes every frame it sends with its own ``StreamWriter.write``, and
asyncio turns each into a ``send`` system call at once. A service under load
acks dozens of deliveries and publishes several envelopes in one turn of the
event loop: dozens of sends, each of which on loopback also runs the
broker's side of TCP in our process: under load those sends were a large
part of the scheduler's and balancer's time (``docs/performance.md``).

:class:`CoalescingWriter` holds what is written during one turn and hands it
to the socket in one write, from a callback the loop runs at the end of the
same turn — no timer, so an idle pipeline answers as fast as before. Order
is kept (one buffer, flushed in order); ``close`` and ``write_eof`` flush
first, so a shutdown sends every byte; ``drain`` keeps its back-pressure
(see :meth:`CoalescingWriter.drain`).

aiormq takes the writer from a :class:`aiormq.connection.TransportFactory`
(its extension point for transports); :class:`CoalescingTransportFactory`
wraps the plain TCP or TLS one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from yarl import URL

LARGE_WRITE = 256 * 1024
"""At or above this many bytes buffered, write at once: joining large frames
would cost a copy that one more system call does not."""


class CoalescingWriter:
    """A ``StreamWriter`` that sends what one loop turn wrote in one write.

    Everything aiormq uses besides writing, draining and closing is the
    wrapped writer's own (``transport``, ``is_closing``, ``wait_closed``, …).
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._scheduled = False
        self.writes = 0
        """Writes handed to the socket (for tests)."""
        self.frames = 0
        """Writes aiormq asked for."""

    def write(self, data: bytes) -> None:
        self.frames += 1
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= LARGE_WRITE:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_scheduled)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def _flush_scheduled(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hand everything buffered to the transport, in one write."""
        if not self._pending:
            return
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_bytes = 0
        if self._writer.transport.is_closing():
            return  # what asyncio does with a write after close: drop it
        self.writes += 1
        self._writer.write(data)

    async def drain(self) -> None:
        # aiormq drains after every publish and ack. Flushing here would undo
        # the coalescing; what drain promises is back-pressure, and a buffer
        # that grows past LARGE_WRITE is flushed by ``write`` itself, so the
        # transport's own high-water mark still applies to everything else.
        await self._writer.drain()

    def write_eof(self) -> None:
        self.flush()
        self._writer.write_eof()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class CoalescingTransportFactory(TransportFactory):
    """aiormq's TCP or TLS transport (by the URL's scheme), with a :class:`CoalescingWriter`."""

    def __init__(self) -> None:
        self.writer: CoalescingWriter | None = None
        """The latest connection's writer (for tests)."""

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        plain: TransportFactory = (
            TLSTransportFactory() if url.scheme == "amqps" else TCPTransportFactory()
        )
        reader, writer = await plain.create(url, **kwargs)
        coalescing = self.writer = CoalescingWriter(writer)
        # Duck-typed: aiormq only calls the methods above and delegated ones.
        return reader, coalescing  # type: ignore[return-value]


__all__ = ["LARGE_WRITE", "CoalescingTransportFactory", "CoalescingWriter"]
