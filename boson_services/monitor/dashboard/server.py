"""The dashboard inside the monitor: uvicorn on a thread and event loop of its own.

Started after the monitor consumes and stopped before it drains. A request
never waits behind the monitor's message work: the monitor's loop only
captures its state once per snapshot tick (:meth:`Dashboard.capture`, a few
reference copies) and the dashboard's thread serves from the latest capture,
reads the task record over connections of its own, and keeps the history.
Actions that must reach the bus (cancel) cross back to the monitor's loop.
The server leaves the process's signals alone — the monitor's own SIGTERM
handling drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn

from boson_services.monitor.dashboard.actions import Canceller, OnLoop
from boson_services.monitor.dashboard.app import build_app
from boson_services.monitor.dashboard.coalesce import CoalescingHttp
from boson_services.monitor.dashboard.gil_turns import GilTurns
from boson_services.monitor.dashboard.history import History
from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.source import DashboardSource
from boson_services.monitor.dashboard.tasks import TaskReader
from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.settings import MonitorSettings, is_loopback
from boson_shared.errors import ConfigError
from boson_shared.record.store import RecordStore
from boson_shared.runtime.bounded_run import run_bounded

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_LEFTOVER_WAIT_S = 1.0
"""How long each step of the thread's loop shutdown waits for what the server
left running (its tasks, async generators, executor threads): with uvicorn's
graceful second, within :data:`_STOP_TIMEOUT_S`."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The dashboard thread's event loop: uvloop's when installed, else asyncio's own.

    Only the dashboard's thread runs on it; the monitor's loop is left as it is.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handlers: the monitor owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Dashboard:
    """The web dashboard of one monitor."""

    def __init__(
        self,
        settings: MonitorSettings,
        handlers: MonitorHandlers,
        *,
        record_url: str | None = None,
        canceller: Canceller | None = None,
    ) -> None:
        refusal = settings.dashboard_refusal()
        if refusal is not None:
            raise ConfigError(refusal)
        self.settings = settings
        self.canceller = canceller
        self.source = DashboardSource(
            handlers,
            History.from_metrics(
                handlers.metrics, interval_s=settings.dashboard_history_interval_s
            ),
            live_interval_s=settings.dashboard_live_interval_s,
            capture_on_read=False,
            # No I/O yet: its connections open on the dashboard's loop, at the first read.
            # No pre-ping: a read on a dropped connection fails once (a 503) and the
            # pool reconnects, rather than every read paying a round trip first.
            # Reads only: no transaction around each read (two round trips fewer).
            # A fixed pool: a burst of reads waits for a kept connection rather
            # than opening (and on return closing) one of its own.
            tasks=TaskReader(
                RecordStore.open(
                    record_url,
                    pre_ping=False,
                    reads_only=True,
                    connections=settings.dashboard_record_connections,
                )
            )
            if record_url is not None
            else None,
        )
        self.guard = Guard(
            token=settings.api_token,
            reading_needs_token=not is_loopback(settings.dashboard_host),
        )
        self.app = build_app(
            self.source,
            self.guard,
            requests_per_s=settings.dashboard_requests_per_s,
            max_body_bytes=settings.dashboard_max_body_bytes,
        )
        self.gil_turns = GilTurns()
        """Called by the monitor's loop between messages: the dashboard's thread gets turns."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The dashboard thread's event loop, while it serves."""

    @property
    def url(self) -> str:
        host = self.settings.dashboard_host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    def capture(self) -> None:
        """Hand the dashboard the monitor's state now (on the monitor's loop, once per tick)."""
        self.source.publish(self.source.capture())

    async def start(self) -> None:
        """Listen; returns once it accepts, or raises a ConfigError saying why not."""
        assert self.settings.dashboard_port is not None
        self.source.publish(self.source.capture(fresh=True))
        if self.canceller is not None:
            self.source.canceller = OnLoop(self.canceller, asyncio.get_running_loop())
        config = uvicorn.Config(
            self.app,
            host=self.settings.dashboard_host,
            port=self.settings.dashboard_port,
            lifespan="off",
            http=CoalescingHttp,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=1,
            limit_concurrency=200,
        )
        listener = self._listen()
        server = _Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=self._run, args=(server, listener), name="monitor:dashboard", daemon=True
        )
        self._thread.start()
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not server.started:
                if not self._thread.is_alive():
                    raise ConfigError(f"the dashboard did not start: {self._failure!r}")
                await asyncio.sleep(0.01)
        self.port = listener.getsockname()[1]
        logger.info("dashboard at %s", self.url)

    def _run(self, server: _Server, listener: socket.socket) -> None:
        """The dashboard's thread: its own event loop, until the server exits."""
        try:
            run_bounded(
                self._serve(server, listener),
                loop_factory=loop_factory(),
                leftover_wait_s=_LEFTOVER_WAIT_S,
            )
        except BaseException as error:  # reported to start(), or logged at stop
            self._failure = error
            logger.exception("the dashboard stopped")

    async def _serve(self, server: _Server, listener: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        history = asyncio.create_task(self._keep_history(), name="dashboard:history")
        try:
            await server.serve([listener])
        finally:
            history.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await history
            if self.source.tasks is not None:
                with contextlib.suppress(Exception):
                    await self.source.tasks.close()

    async def _keep_history(self) -> None:
        while True:
            await asyncio.sleep(self.source.history.interval_s)
            try:
                self.source.sample()
            except Exception:  # one bad sample must not end the history
                logger.exception("dashboard history sample failed")

    def _listen(self) -> socket.socket:
        """The listening socket, bound here so that a busy port is a clear ConfigError."""
        host, port = self.settings.dashboard_host, self.settings.dashboard_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port or 0))
        except OSError as error:
            listener.close()
            raise ConfigError(f"the dashboard cannot listen on {host}:{port}: {error}") from error
        return listener

    async def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        thread, self._thread = self._thread, None
        await asyncio.to_thread(thread.join, _STOP_TIMEOUT_S)
        if thread.is_alive():
            logger.warning("the dashboard did not stop within %.0f s", _STOP_TIMEOUT_S)


__all__ = ["Dashboard", "loop_factory"]
