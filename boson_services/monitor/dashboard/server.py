"""The dashboard inside the monitor: uvicorn on the monitor's event loop.

Started after the monitor consumes and stopped before it drains. The server
leaves the process's signals alone — the monitor's own SIGTERM handling
drains it — and its history job runs beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from boson_services.monitor.dashboard.app import build_app
from boson_services.monitor.dashboard.history import History
from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.source import DashboardSource
from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.settings import MonitorSettings, is_loopback
from boson_shared.errors import ConfigError

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0


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
    ) -> None:
        refusal = settings.dashboard_refusal()
        if refusal is not None:
            raise ConfigError(refusal)
        metrics = handlers.metrics
        self.settings = settings
        self.source = DashboardSource(
            handlers,
            History(
                succeeded=metrics.tasks_completed,
                failed=metrics.tasks_failed,
                latency=metrics.task_latency,
                interval_s=settings.dashboard_history_interval_s,
            ),
            live_interval_s=settings.dashboard_live_interval_s,
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
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = self.settings.dashboard_host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    async def start(self) -> None:
        """Listen; returns once it accepts, or raises a ConfigError saying why not."""
        assert self.settings.dashboard_port is not None
        config = uvicorn.Config(
            self.app,
            host=self.settings.dashboard_host,
            port=self.settings.dashboard_port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=1,
            limit_concurrency=200,
        )
        listener = self._listen()
        server = _Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve([listener]), name="monitor:dashboard")
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)
        self.port = listener.getsockname()[1]
        logger.info("dashboard at %s", self.url)

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

    async def sample(self) -> None:
        """The history's periodic job."""
        self.source.sample()

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=5.0)
        self._task = None


__all__ = ["Dashboard"]
