"""A tiny HTTP endpoint for health, metrics and small JSON views.

Every service serves ``GET /health`` (the monitor adds ``/metrics`` and
``/backlog`` on the same port). It is deliberately minimal — HTTP/1.0, GET
only, one response per connection — because probes and scrapers need nothing
more, and a web framework would be the biggest dependency of a small service.
Every wait of a request is bounded (:data:`IO_TIMEOUT_S`): a client that
sends nothing, or stops reading its response, is dropped rather than holding
its handler (and, on Python 3.12 and later, the server's close) for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_MAX_REQUEST_LINE = 8192
IO_TIMEOUT_S = 5.0
"""How long a request may take to arrive, and its response to be taken."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, payload: Mapping[str, Any], status: int = 200) -> Response:
        return cls(status, json.dumps(payload, sort_keys=True).encode())


Route = Callable[[], Response]


class HealthServer:
    """Serves ``routes`` (path → response builder) on ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Route],
        *,
        io_timeout_s: float = IO_TIMEOUT_S,
    ) -> None:
        self._host = host
        self._port = port
        self._routes = dict(routes)
        self._io_timeout_s = io_timeout_s
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def open_connections(self) -> int:
        """Connections being served now (each ends within its bounds)."""
        return len(self._open)

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("health server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        bound = self._io_timeout_s
        try:
            try:
                request_line = await asyncio.wait_for(reader.readline(), timeout=bound)
                # Drain headers; none of them matter here.
                while True:
                    line = await asyncio.wait_for(reader.readline(), timeout=bound)
                    if line in (b"\r\n", b"\n", b""):
                        break
            except TimeoutError:
                logger.debug("health request dropped: none within %.1fs", bound)
                return
            response = self._respond(request_line[:_MAX_REQUEST_LINE])
            head = (
                f"HTTP/1.0 {response.status} {_REASONS.get(response.status, 'Error')}\r\n"
                f"Content-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + response.body)
            try:
                await asyncio.wait_for(writer.drain(), timeout=bound)
            except TimeoutError:
                self._drop(writer)
        except ConnectionError as error:
            logger.debug("health request dropped: %s", error)
        finally:
            writer.close()
            try:
                # Closing waits for what is still buffered to be taken.
                await asyncio.wait_for(writer.wait_closed(), timeout=bound)
            except TimeoutError:
                self._drop(writer)
            except ConnectionError:
                pass
            self._open.discard(writer)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        """Abort a connection whose client stopped taking its response."""
        logger.info(
            "health client %s did not take its response within %.1fs; dropped",
            writer.get_extra_info("peername"),
            self._io_timeout_s,
        )
        writer.transport.abort()

    def _respond(self, request_line: bytes) -> Response:
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2:
            return Response.json({"error": "bad request"}, 405)
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method != "GET":
            return Response.json({"error": "only GET"}, 405)
        route = self._routes.get(target)
        if route is None:
            return Response.json({"error": "not found", "paths": sorted(self._routes)}, 404)
        try:
            return route()
        except Exception as error:
            logger.exception("health route %s failed", target)
            return Response.json({"status": "error", "error": type(error).__name__}, 503)


__all__ = ["HealthServer", "Response", "Route"]
