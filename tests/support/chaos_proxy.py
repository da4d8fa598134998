"""A TCP proxy that drops and stalls the connections through it, on demand.

Services pointed at the proxy's port reach the broker through it; the test
then calls :meth:`ChaosProxy.chaos` for a bounded time, during which random
connections are cut (both sides aborted, like a network failure) or stalled
(no byte moves either way for a while, like a congested link). It listens on
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url


@dataclass
class ChaosStats:
    """What the proxy did, for the test's figures."""

    accepted: int = 0
    drops: int = 0
    stalls: int = 0
    stalled_s: float = 0.0
    bytes: int = 0


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream twin."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class ChaosProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.stats = ChaosStats()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving: set[asyncio.Task[object]] = set()
        """Each connection's handler, waited for (bounded) by :meth:`close`."""
        self.refusing = False
        """While set (:meth:`cut`), every connection is cut as soon as it opens."""
        self.stalled = False
        """While set (:meth:`stall`), no byte moves on any connection, old or new."""

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serving = asyncio.current_task()
        if serving is not None:
            self._serving.add(serving)
            serving.add_done_callback(self._serving.discard)
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        self.stats.accepted += 1
        link = _Link(writer, up_writer)
        if not self.stalled:
            link.flowing.set()
        self._links.add(link)
        link.pumps = [
            asyncio.create_task(self._pump(link, reader, up_writer)),
            asyncio.create_task(self._pump(link, up_reader, writer)),
        ]
        await asyncio.gather(*link.pumps, return_exceptions=True)
        link.abort()
        self._links.discard(link)

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                await link.flowing.wait()
                writer.write(data)
                await writer.drain()
                self.stats.bytes += len(data)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # One side closed or failed: the other side goes too.
            link.abort()

    async def chaos(
        self,
        duration: float,
        *,
        every: tuple[float, float] = (0.3, 1.5),
        stall: tuple[float, float] = (0.5, 3.0),
        drop_share: float = 0.5,
    ) -> ChaosStats:
        """For ``duration`` seconds, every few moments cut or stall a random link."""
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.rng.uniform(*every)))
            links = sorted(self._links, key=id)
            if not links or time.monotonic() >= deadline:
                continue
            link = self.rng.choice(links)
            if self.rng.random() < drop_share:
                self.stats.drops += 1
                link.abort()
            else:
                seconds = min(self.rng.uniform(*stall), max(0.0, deadline - time.monotonic()))
                self.stats.stalls += 1
                self.stats.stalled_s += seconds
                task = asyncio.create_task(self._stall(link, seconds))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return self.stats

    def cut(self) -> None:
        """The upstream is gone: cut every link and every new one until :meth:`restore`."""
        self.refusing = True
        for link in list(self._links):
            self.stats.drops += 1
            link.abort()

    def stall(self) -> None:
        """The upstream stops answering, its connections left open: nothing moves
        on any link, nor on a new one, until :meth:`restore`."""
        self.stalled = True
        for link in self._links:
            link.flowing.clear()

    def restore(self) -> None:
        self.refusing = False
        if self.stalled:
            self.stalled = False
            for link in self._links:
                link.flowing.set()

    @staticmethod
    async def _stall(link: _Link, seconds: float) -> None:
        link.flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            link.flowing.set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for link in list(self._links):
            link.abort()
        if self._serving:
            # Their links are aborted: they end at once, before the loop does.
            await asyncio.wait(set(self._serving), timeout=5)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


async def in_front_of_database(url: str) -> tuple[ChaosProxy, str]:
    """A started proxy in front of the database at ``url``, and the URL that
    reaches it through the proxy (the caller closes the proxy)."""
    upstream = make_url(url)
    proxy = ChaosProxy(upstream.host or "127.0.0.1", upstream.port or 5432)
    port = await proxy.start()
    return proxy, upstream.set(port=port).render_as_string(hide_password=False)


__all__ = ["ChaosProxy", "ChaosStats", "in_front_of_database"]
