"""The service base: declare, consume, run background loops, drain on stop.

A service subclass says *what* it consumes (:meth:`Service.consumers`), what
it declares (:meth:`Service.topology`) and which periodic loops it runs
(:meth:`Service.background`); the base does the rest the same way for all
five services: connect, declare, start consuming, and on stop — SIGTERM in
production, an Event in tests — stop consuming, let in-flight work finish
within the grace period, hand back what did not, close.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.topology import Topology
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.health import Response
from boson_shared.runtime.publisher import BatchingPublisher
from boson_shared.settings import BosonSettings

logger = logging.getLogger(__name__)

Periodic = Callable[[], Awaitable[None]]

_PERIODIC_CANCEL_WAIT_S = 1.0
"""How long a cancelled periodic loop has to end before it is cancelled again."""

STOP_MARGIN_S = 30.0
"""Beyond the drain's grace, how long a service may take to stop (its handlers'
cancel, its own closes, its publisher's: each bounded) before it is cancelled:
the default of :meth:`RunningService.stop` and ``EmbeddedCluster.stop``."""

CANCEL_WAIT_S = 5.0
"""How long :meth:`RunningService.stop` waits for a service it cancelled."""

PERIODIC_END_S = 5.0
"""How long a stop waits for its periodic loops to end before it goes on without them."""


class Service(abc.ABC):
    """Base of every Boson service."""

    name: ClassVar[str]
    periodic_end_s: ClassVar[float] = PERIODIC_END_S
    """How long a stop waits for the periodic loops to end (see ``_end_periodic``)."""

    def __init__(self, settings: BosonSettings, transport: Transport, codec: Codec) -> None:
        self.settings = settings
        self.transport = transport
        self.codec = codec
        self.names = settings.names()
        self.publisher = BatchingPublisher(
            transport,
            codec,
            max_items=settings.batch_max_items,
            max_bytes=settings.batch_max_bytes,
            max_in_flight=settings.batch_max_in_flight,
        )
        self.seen = SeenIds(settings.dedup_capacity)
        self.loops: list[ConsumeLoop[Any]] = []
        # Dead letters of loops since removed (a dead node's queue drained by
        # the balancer): the service's count must not drop when one goes.
        self._retired_dead_lettered = 0
        self.started = asyncio.Event()
        self.stopping = False
        self._left_running: set[asyncio.Task[None]] = set()

    # -- what a subclass says ---------------------------------------------

    @abc.abstractmethod
    def topology(self) -> Topology:
        """Everything this service declares at start."""

    @abc.abstractmethod
    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        """The queues this service consumes and their handlers."""

    def background(self) -> Sequence[tuple[float, Periodic]]:
        """Periodic loops as (interval seconds, coroutine function)."""
        return ()

    async def on_start(self) -> None:  # noqa: B027 - an optional hook
        """Called after declaring, before consuming."""

    async def on_stop(self) -> None:  # noqa: B027 - an optional hook
        """Called after draining, before the transport closes."""

    def health(self) -> dict[str, Any]:
        """The body of ``GET /health``; subclasses add their own fields."""
        return {
            "service": self.name,
            "instance": self.settings.instance_id,
            "status": "ok" if self.transport.is_connected and self.started.is_set() else "starting",
            "broker_connected": self.transport.is_connected,
            "in_flight": sum(loop.in_flight for loop in self.loops),
            "dead_lettered": self._retired_dead_lettered
            + sum(loop.stats.dead_lettered for loop in self.loops),
            # How well batching works here: items per envelope, in and out.
            "consumed": {
                loop.spec.queue: {
                    "deliveries": loop.stats.deliveries,
                    "handled": loop.stats.handled,
                }
                for loop in self.loops
            },
            "published": {
                "items": self.publisher.stats.items,
                "envelopes": self.publisher.stats.envelopes,
                "confirm_seconds": round(self.publisher.stats.confirm_seconds, 6),
            },
        }

    def routes(self) -> dict[str, Callable[[], Response]]:
        """HTTP routes of this service's health endpoint."""

        def health() -> Response:
            body = self.health()
            return Response.json(body, 200 if body["status"] == "ok" else 503)

        return {"/health": health}

    # -- lifecycle ---------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then drain and return."""
        if not self.transport.is_connected:
            await self.transport.connect()
        await self.transport.declare(self.topology())
        await self.on_start()
        self.loops = [self.make_loop(spec) for spec in self.consumers()]
        # Plain tasks, not a TaskGroup's: a group's exit waits for its tasks
        # without a bound, and a loop that ignores its cancel must not hold
        # the stop (``_end_periodic`` gives up on it).
        periodic = [
            asyncio.create_task(self._every(interval, fn), name=f"{self.name}:{fn.__name__}")
            for interval, fn in self.background()
        ]
        try:
            for loop in self.loops:
                await loop.start()
            self.started.set()
            logger.info("%s started (instance %s)", self.name, self.settings.instance_id)
            await stop.wait()
            self.stopping = True
            logger.info("%s draining", self.name)
            for loop in self.loops:
                await loop.stop()
            await asyncio.gather(*(loop.drain(self.settings.drain_grace_s) for loop in self.loops))
        finally:
            # Also when the start fails or ``run`` is cancelled.
            await self._end_periodic(periodic)
        await self.on_stop()
        await self.publisher.close()
        logger.info("%s stopped", self.name)

    def make_loop(self, spec: ConsumerSpec[Any]) -> ConsumeLoop[Any]:
        return ConsumeLoop(
            spec,
            transport=self.transport,
            codec=self.codec,
            publisher=self.publisher,
            names=self.names,
            seen=self.seen,
        )

    async def add_consumer(self, spec: ConsumerSpec[Any]) -> ConsumeLoop[Any]:
        """Start consuming one more queue while running (e.g. a dead node's)."""
        loop = self.make_loop(spec)
        await loop.start()
        self.loops.append(loop)
        return loop

    async def remove_consumer(self, loop: ConsumeLoop[Any]) -> None:
        """Stop a consumer added with :meth:`add_consumer`, letting its work finish."""
        await loop.stop()
        await loop.drain(self.settings.drain_grace_s)
        if loop in self.loops:
            self.loops.remove(loop)
            self._retired_dead_lettered += loop.stats.dead_lettered

    async def _every(self, interval: float, fn: Periodic) -> None:
        # Ends on its own once stopping, should its cancel be lost on the way.
        while not self.stopping:
            try:
                await fn()
            except Exception:
                # A periodic job's failure (broker blip) must not end the service.
                logger.exception("%s: periodic %s failed", self.name, fn.__name__)
            await asyncio.sleep(interval)

    async def _end_periodic(self, periodic: Sequence[asyncio.Task[None]]) -> None:
        """Cancel the periodic loops and wait until they end, cancelling again
        one that carries on: a library can turn a cancel into an error of its
        own (``boson_shared.bus.cancel_wins``), and the stop must not wait on it.
        One still running after :attr:`periodic_end_s` is left behind, named."""
        self.stopping = True  # each loop also ends by itself at its next turn
        deadline = asyncio.get_running_loop().time() + self.periodic_end_s
        running = set(periodic)
        for task in running:
            task.cancel()
        while running:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            _, running = await asyncio.wait(running, timeout=min(_PERIODIC_CANCEL_WAIT_S, left))
            for task in running:
                logger.warning("%s: %s carried on after its cancel", self.name, task.get_name())
                task.cancel()
        for task in periodic:
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.error("%s: %s ended with %r", self.name, task.get_name(), task.exception())
        for task in running:
            logger.error(
                "%s: %s did not end within %.1fs of its cancel; the stop goes on without it",
                self.name,
                task.get_name(),
                self.periodic_end_s,
            )
            # Held, so the loop is not collected mid-way while it carries on.
            self._left_running.add(task)
            task.add_done_callback(self._left_running.discard)


@dataclass
class RunningService:
    """A service running as a task of this event loop (embedded mode, tests)."""

    service: Service
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self, *, timeout: float | None = None) -> None:
        """Drain and wait for it; a failure it ended with is raised here.

        ``timeout``: how long to wait (by default its drain grace and
        :data:`STOP_MARGIN_S`); past it the service is cancelled, given
        :data:`CANCEL_WAIT_S` more to end, and :class:`TimeoutError` names it.
        Should the caller be cancelled meanwhile, the service is cancelled too
        (as ``await`` on its task would) and the cancel goes on to the caller
        at once.
        """
        if timeout is None:
            timeout = self.service.settings.drain_grace_s + STOP_MARGIN_S
        self.stop_event.set()
        await _end_within(self.task, self.service.name, timeout)


async def _end_within(task: asyncio.Task[None], name: str, timeout: float) -> None:
    """Wait for ``task``, the stopping service ``name``, as
    :meth:`RunningService.stop` describes: bounded, then cancelled, then named."""
    try:
        # asyncio.wait, not a timeout around ``await task``: that would wait
        # for the task all the same should it not take its cancel.
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()  # the caller's cancel; not waited for, it may not take it
        raise
    if not task.done():
        logger.error("%s did not stop within %.1fs; cancelling it", name, timeout)
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
        ended = "cancelled" if task.done() else "still running after its cancel"
        raise TimeoutError(f"{name} did not stop within {timeout:.1f}s; {ended}")
    await task  # raises what it ended with


async def start_in_background(service: Service, *, timeout: float = 30.0) -> RunningService:
    """Run ``service`` until stopped; returns once it consumes, or raises why it did not."""
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(service.run(stop), name=service.name)
    started = asyncio.ensure_future(service.started.wait())
    done, _ = await asyncio.wait({started, task}, timeout=timeout, return_when="FIRST_COMPLETED")
    if task in done:
        started.cancel()
        task.result()  # raises what made the service fail to start
    if started not in done:
        started.cancel()
        raise TimeoutError(f"{service.name} did not start within {timeout:.0f}s")
    return RunningService(service, stop, task)


async def stop_all(
    running: Sequence[RunningService], *, timeout: float | None = None
) -> list[tuple[Service, BaseException]]:
    """Drain every service (all at once), wait for each as
    :meth:`RunningService.stop` does (``timeout`` seconds at most, from when
    its turn comes, by default its drain grace and :data:`STOP_MARGIN_S`;
    then cancelled, :data:`CANCEL_WAIT_S` more, and named), close its
    transport.

    Returns the services that ended with an error (or did not end in time),
    so the caller decides whether that is worth a log line or a failure.
    """
    for item in running:
        item.stop_event.set()
    failures: list[tuple[Service, BaseException]] = []
    for item in reversed(running):
        try:
            await item.stop(timeout=timeout)
        except (Exception, asyncio.CancelledError) as error:
            current = asyncio.current_task()
            if isinstance(error, asyncio.CancelledError) and current and current.cancelling():
                raise  # the caller is cancelled (its own bound): not the service's failure
            failures.append((item.service, error))
        try:
            await item.service.transport.close()
        except Exception as error:
            failures.append((item.service, error))
    return failures


__all__ = [
    "CANCEL_WAIT_S",
    "PERIODIC_END_S",
    "STOP_MARGIN_S",
    "Periodic",
    "RunningService",
    "Service",
    "start_in_background",
    "stop_all",
]
