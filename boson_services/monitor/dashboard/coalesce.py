"""One send per answer: uvicorn's writes within one turn of the loop leave together.

uvicorn writes an answer's status line and headers when the app starts it,
and the body when the app sends it: two ``send`` calls, two TCP segments
(the transport sets ``TCP_NODELAY``), and two wake-ups of the client, for
answers of a few kilobytes. :class:`CoalescingWrites` holds what is written
during one turn of the dashboard's loop and hands it to the socket as one
write at the end of that turn (``call_soon``), so a whole answer leaves in
one ``send``. Nothing waits longer than the rest of the turn; closing
writes what is held first.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

if importlib.util.find_spec("httptools") is not None:
    # httptools (llhttp, in C) parses; the web extra brings it.
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
else:  # h11, pure Python, when httptools is not installed
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]


class CoalescingWrites:
    """A transport whose writes within one loop turn become one write to ``transport``.

    Everything else (flow control, extra info, reading) is the transport's own.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def flush(self) -> None:
        """Write what is held now (a no-op when nothing is, or the transport is closing)."""
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttp(_Protocol):
    """uvicorn's HTTP/1.1 protocol (httptools', else h11's) over :class:`CoalescingWrites`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingWrites(transport, self.loop))  # type: ignore[arg-type]


__all__ = ["CoalescingHttp", "CoalescingWrites"]
