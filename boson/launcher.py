"""The in-process launcher: every service on the embedded broker, one process.

::

    async with boson.embedded(executors=2) as client:
        print(await client.execute("stats", data=b"a,b\\n1,2\\n3,4\\n"))

The services are the real ones — the same classes ``boson run`` starts as
processes — each with its own in-memory "connection" to one
:class:`~boson_shared.bus.memory.MemoryBroker`, and an ephemeral key: messages
are encoded, encrypted and decoded exactly as on RabbitMQ.

The scheduler's compiled placement kernels are made ready before the first
service starts, in a thread (:meth:`EmbeddedCluster.ready_kernels`): on a
fresh install they compile for seconds, which on the loop every service
shares would stall them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from boson.client import Client
from boson_services.balancer.app import BalancerService
from boson_services.balancer.settings import BalancerSettings
from boson_services.executor.app import ExecutorService
from boson_services.executor.settings import ExecutorSettings
from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_services.scheduler.app import SchedulerService
from boson_services.scheduler.settings import SchedulerSettings
from boson_services.transfer.app import TransferService
from boson_services.transfer.settings import TransferSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.runtime.service import (
    STOP_MARGIN_S,
    RunningService,
    Service,
    start_in_background,
    stop_all,
)
from boson_shared.scheduling.kernels import kernels_ready, ready_kernels
from boson_shared.scheduling.scores import DEFAULT_STRATEGY, Strategy
from boson_shared.settings import BosonSettings

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_RECORD_SETTLE_S = 10.0
_KERNELS_NOTICE_S = 1.0
"""Loading the kernels from numba's cache takes less; compiling them, seconds: say why."""
_KERNELS_TIMEOUT_S = 300.0
"""Ample for a compile on a loaded machine; past it something is wrong."""
KERNELS_NOTICE = "readying the placement kernels (a first run compiles them)…"
"""What a start that waits for the kernels says (through ``EmbeddedCluster.notice``)."""


def _log_notice(text: str) -> None:
    logger.info("%s", text)


S = TypeVar("S", bound=BosonSettings)


def derive(cls: type[S], base: BosonSettings, **overrides: Any) -> S:
    """Service settings that share ``base``'s values, plus their own."""
    values = {name: getattr(base, name) for name in BosonSettings.model_fields}
    values.update(overrides)
    return cls(**values)


@dataclass
class EmbeddedCluster:
    """Services running as tasks of this event loop on one in-memory broker."""

    settings: BosonSettings = field(default_factory=BosonSettings)
    broker: MemoryBroker = field(default_factory=MemoryBroker)
    codec: EnvelopeCodec | None = None
    blob_dir: Path | None = None
    """The transfer service's blob store; a temporary directory (removed at stop) if None."""
    services: list[Service] = field(default_factory=list)
    dashboard_url: str | None = None
    """The monitor's web dashboard, once the control plane runs with one."""
    notice: Callable[[str], None] = _log_notice
    """Where a slow start says why (the commands print it; by default it is logged)."""
    _running: list[RunningService] = field(default_factory=list)
    _temporary_blob_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.codec is None:
            self.codec = EnvelopeCodec.from_settings(self.settings, keyring=Keyring.ephemeral())

    def transport(self) -> MemoryTransport:
        return MemoryTransport(self.broker)

    def _codec(self) -> EnvelopeCodec:
        assert self.codec is not None
        return self.codec

    async def start(self, service: Service) -> Service:
        """Run ``service`` until :meth:`stop`; returns once it consumes."""
        running = await start_in_background(service, timeout=_START_TIMEOUT_S)
        self.services.append(service)
        self._running.append(running)
        return service

    async def ready_kernels(self, strategy: Strategy = DEFAULT_STRATEGY) -> None:
        """Load (on a fresh install: compile) ``strategy``'s placement kernels, in a thread.

        Before any service starts: the scheduler would otherwise do it when
        it is made, on this loop, while the services started before it wait
        (the monitor would find its own sweeps late). Past
        :data:`_KERNELS_NOTICE_S`, :attr:`notice` says why the start waits.
        """
        if kernels_ready(strategy):
            return
        loading = asyncio.ensure_future(asyncio.to_thread(ready_kernels, strategy))
        done, _ = await asyncio.wait({loading}, timeout=_KERNELS_NOTICE_S)
        if not done:
            self.notice(KERNELS_NOTICE)
        done, _ = await asyncio.wait({loading}, timeout=_KERNELS_TIMEOUT_S)
        if not done:
            raise TimeoutError(
                f"the placement kernels were not ready within {_KERNELS_TIMEOUT_S:.0f}s"
            )
        loading.result()

    async def start_control_plane(
        self, *, strategy: Strategy = DEFAULT_STRATEGY, dashboard_port: int | None = None
    ) -> None:
        """Monitor, scheduler, balancer and transfer (``dashboard_port``: the monitor's web
        dashboard there, 0 for any free port; None: as ``BOSON_DASHBOARD_PORT`` says).

        The scheduler's kernels first (:meth:`ready_kernels`), before any service runs."""
        await self.ready_kernels(strategy)
        base = self.settings
        extra = {} if dashboard_port is None else {"dashboard_port": dashboard_port}
        monitor = MonitorService(
            derive(MonitorSettings, base, **extra), self.transport(), self._codec()
        )
        await self.start(monitor)
        if monitor.dashboard is not None:
            self.dashboard_url = monitor.dashboard.url
            logger.info("Boson dashboard at %s", self.dashboard_url)
        await self.start(
            SchedulerService(
                derive(SchedulerSettings, base, strategy=strategy), self.transport(), self._codec()
            )
        )
        await self.start(
            BalancerService(derive(BalancerSettings, base), self.transport(), self._codec())
        )
        if self.blob_dir is None:
            self._temporary_blob_dir = self.blob_dir = Path(tempfile.mkdtemp(prefix="boson-blobs-"))
        await self.start(
            TransferService(
                derive(TransferSettings, base, blob_dir=self.blob_dir),
                self.transport(),
                self._codec(),
            )
        )

    async def start_executor(self, node_id: str, **options: Any) -> ExecutorService:
        settings = derive(ExecutorSettings, self.settings, node_id=node_id, **options)
        service = ExecutorService(settings, self.transport(), self._codec())
        await self.start(service)
        return service

    async def client(self, **options: Any) -> Client:
        client = Client(self.settings, self.transport(), self._codec(), **options)
        await client.start()
        return client

    async def stop_service(self, service: Service) -> None:
        await self._running[self.services.index(service)].stop()
        await service.transport.close()

    async def settle_record(self, timeout: float = _RECORD_SETTLE_S) -> bool:
        """Wait (bounded) until the monitors have written every queued record event.

        The in-memory broker's queues end with the process: what the record
        has not taken by then would be missing from it.
        """
        monitors = [s for s in self.services if isinstance(s, MonitorService) and s.record]
        if not monitors:
            return True
        queue = monitors[0].names.record_queue
        transport = monitors[0].transport
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if not all(m.record and m.record.ready and not m.record.outage for m in monitors):
                return False  # no database to write to: nothing to wait for
            busy = sum(loop.in_flight for m in monitors for loop in m.record_loops)
            if busy == 0 and await transport.queue_depth(queue) == 0:
                return True
            await asyncio.sleep(0.02)
        logger.warning("the task record did not catch up within %.0fs", timeout)
        return False

    async def stop(self, *, timeout: float | None = None) -> None:
        """Stop every service (last started first) and wait for each at most
        ``timeout`` seconds (by default the drain's grace and a margin); one
        that takes longer is cancelled, and said so."""
        if timeout is None:
            timeout = self.settings.drain_grace_s + STOP_MARGIN_S
        await self.settle_record()
        for service, error in await stop_all(self._running, timeout=timeout):
            if not isinstance(error, asyncio.CancelledError):
                logger.error("%s ended with %s: %s", service.name, type(error).__name__, error)
        if self._temporary_blob_dir is not None:
            shutil.rmtree(self._temporary_blob_dir, ignore_errors=True)
            self._temporary_blob_dir = self.blob_dir = None


@contextlib.asynccontextmanager
async def embedded(
    *,
    executors: int = 2,
    slots: int = 2,
    settings: BosonSettings | None = None,
    strategy: Strategy = DEFAULT_STRATEGY,
    handler_modules: Sequence[str] = (),
    executor_options: dict[str, Any] | None = None,
    dashboard_port: int | None = None,
    notice: Callable[[str], None] = _log_notice,
) -> AsyncIterator[Client]:
    """Run the whole pipeline in-process and yield a connected client.

    ``dashboard_port`` serves the monitor's web dashboard (0: any free port);
    its address is logged. ``notice`` gets the line a slow start says why it
    waits (a first run compiling the placement kernels); by default it is
    logged.
    """
    cluster = EmbeddedCluster(settings or BosonSettings(), notice=notice)
    try:
        await cluster.start_control_plane(strategy=strategy, dashboard_port=dashboard_port)
        for number in range(executors):
            await cluster.start_executor(
                f"local-{number + 1}",
                slots=slots,
                handler_modules=tuple(handler_modules),
                **(executor_options or {}),
            )
        client = await cluster.client()
        try:
            yield client
        finally:
            await client.close()
    finally:
        await cluster.stop()


__all__ = ["KERNELS_NOTICE", "EmbeddedCluster", "derive", "embedded"]
