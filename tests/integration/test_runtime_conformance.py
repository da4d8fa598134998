"""The service runtime on both transports: what every Boson service may rely on.

Each case runs a real :class:`~boson_shared.runtime.service.Service` on the
in-memory broker and on RabbitMQ (``transport_kind`` is parametrised; the
AMQP run carries the ``broker`` mark): redelivery from a killed consumer,
retries with growing delays, dead-lettering with the reason in the headers,
idempotence by message id, recovery from a server-side connection close,
and draining on stop (an Event, or SIGTERM through ``serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from boson_shared.bus.abc import Delivery
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.bus.memory import MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskResult, TaskSubmitted
from boson_shared.contract.topology import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_KIND,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
    RK_ALL_RESULTS,
    Topology,
)
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit
from boson_shared.runtime.main import serve
from boson_shared.runtime.results import result_emit
from boson_shared.runtime.service import Service
from boson_shared.runtime.tap import Tap
from boson_shared.settings import BosonSettings
from tests.conftest import Declared, TrackingTransport, TransportFactory, TransportKind

WAIT = 10.0
DELAYS_MS = (200, 400)
MAX_ATTEMPTS = 3
CLIENT = "client-1"

Behaviour = Callable[[TaskSubmitted], Awaitable[None]]


async def succeed(task: TaskSubmitted) -> None:
    return None


class Worker(Service):
    """A service that runs ``behaviour`` on each task and answers with a result."""

    name = "worker"

    def __init__(
        self,
        settings: BosonSettings,
        transport: TrackingTransport,
        codec: EnvelopeCodec,
        behaviour: Behaviour = succeed,
    ) -> None:
        super().__init__(settings, transport, codec)
        self.behaviour = behaviour
        self.calls: list[tuple[str, float]] = []
        self.queue = f"{settings.namespace}.jobs"

    def topology(self) -> Topology:
        return self.names.work_queue(self.queue, ["job.#"])

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return [ConsumerSpec(self.queue, (TaskSubmitted,), self.handle, prefetch=10)]

    async def handle(self, task: TaskSubmitted) -> Sequence[Emit]:
        self.calls.append((task.task_id, time.monotonic()))
        await self.behaviour(task)
        result = TaskResult(
            message_id=f"{task.task_id}.result",
            task_id=task.task_id,
            handler=task.handler,
            status="succeeded",
            output={"by": self.settings.instance_id},
            reply_to=task.reply_to,
            submitted_at=task.submitted_at,
        )
        return [result_emit(self.names, result)]

    def called(self, task_id: str) -> int:
        return sum(1 for called, _ in self.calls if called == task_id)


class Inbox:
    """Acks and keeps every delivery of a queue (the dead-letter queue)."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[Delivery] = asyncio.Queue()

    async def __call__(self, delivery: Delivery) -> None:
        await delivery.ack()
        await self.items.put(delivery)

    async def get(self, within: float = WAIT) -> Delivery:
        async with asyncio.timeout(within):
            return await self.items.get()


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - state owned by other tasks
            await asyncio.sleep(0.02)


def task(number: int) -> TaskSubmitted:
    return TaskSubmitted(
        message_id=f"t{number}", task_id=f"t{number}", handler="noop", reply_to=CLIENT
    )


@dataclass
class Rig:
    kind: TransportKind
    namespace: str
    factory: TransportFactory
    declared: Declared
    settings: BosonSettings
    codec: EnvelopeCodec = field(default_factory=lambda: EnvelopeCodec(Keyring.ephemeral()))
    admin: TrackingTransport | None = None
    tap: Tap | None = None
    dead: Inbox = field(default_factory=Inbox)
    running: list[tuple[Worker, asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)
    own: list[TrackingTransport] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return f"{self.namespace}.jobs"

    async def transport(self, label: str) -> TrackingTransport:
        """A connection of its own; on AMQP named so that it can be closed alone."""
        if self.kind.url is None:
            return await self.factory()
        inner = AmqpTransport(
            self.kind.url,
            connection_name=f"boson-test {self.namespace} {label}",
            confirm_timeout=10,
            op_timeout=10,
            reconnect_interval=0.3,
        )
        transport = TrackingTransport(inner, self.declared, "amqp")
        await transport.connect()
        self.own.append(transport)
        return transport

    def worker(
        self, transport: TrackingTransport, behaviour: Behaviour = succeed, **overrides: Any
    ) -> Worker:
        settings = self.settings.model_copy(update=overrides)
        return Worker(settings, transport, self.codec, behaviour)

    async def start(self, worker: Worker) -> tuple[asyncio.Event, asyncio.Task[None]]:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        self.running.append((worker, stop, running))
        started = asyncio.ensure_future(worker.started.wait())
        await asyncio.wait({started, running}, timeout=WAIT, return_when="FIRST_COMPLETED")
        if running.done():
            running.result()
        assert started.done(), "the worker did not start"
        return stop, running

    async def send(self, *tasks: TaskSubmitted, body: bytes | None = None) -> None:
        assert self.admin is not None
        await self.admin.publish(
            self.settings.names().work_exchange,
            "job.x",
            body if body is not None else self.codec.encode(list(tasks)),
            mandatory=True,
        )

    def results(self) -> list[str]:
        assert self.tap is not None
        return sorted(m.task_id for m in self.tap.messages if isinstance(m, TaskResult))

    async def wait_results(self, count: int) -> list[str]:
        await eventually(lambda: len(self.results()) >= count)
        return self.results()


@pytest.fixture
async def rig(
    transport_kind: TransportKind,
    transport_factory: TransportFactory,
    namespace: str,
    declared: Declared,
) -> AsyncIterator[Rig]:
    settings = BosonSettings(
        namespace=namespace,
        retry_delays_ms=DELAYS_MS,
        max_attempts=MAX_ATTEMPTS,
        drain_grace_s=5.0,
        instance_id="w1",
    )
    rig = Rig(transport_kind, namespace, transport_factory, declared, settings)
    rig.admin = await rig.transport("admin")
    names = settings.names()
    await rig.admin.declare(names.work_queue(rig.queue, ["job.#"]))
    await rig.admin.consume(names.dead_letter_queue, rig.dead, prefetch=100)
    rig.tap = Tap(
        rig.admin, rig.codec, f"{namespace}.tap", [(names.events_exchange, RK_ALL_RESULTS)]
    )
    await rig.tap.start()
    rig.declared.queues.add(rig.tap.queue)
    try:
        yield rig
    finally:
        for _, stop, _running in rig.running:
            stop.set()
        for worker, _, running in rig.running:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(15):
                    await running
            with contextlib.suppress(Exception):
                await worker.transport.close()
        for transport in rig.own:
            with contextlib.suppress(Exception):
                await transport.close()


async def lose_connection(rig: Rig, transport: TrackingTransport, label: str) -> None:
    """The server closes one service's connection (``rabbitmqctl close_connection``)."""
    if isinstance(transport.inner, MemoryTransport):
        await transport.inner.drop()
        return
    ctl = rig.kind.rabbitmqctl
    if ctl is None:
        pytest.fail("the AMQP run needs rabbitmqctl where the broker is to close connections")
    name = f"boson-test {rig.namespace} {label}"
    listing = await ctl("list_connections", "pid", "client_properties", "--no-table-headers", "-q")
    ours = [
        line.split()[0]
        for line in listing.splitlines()
        if f'{{"connection_name","{name}"}}' in line
    ]
    assert len(ours) == 1, f"expected one connection named {name!r}"
    await ctl("close_connection", ours[0], "test: server-side close")


# -- cases ------------------------------------------------------------------


async def test_a_killed_consumer_hands_its_unacked_work_to_another(rig: Rig) -> None:
    never = asyncio.Event()

    async def hang(task: TaskSubmitted) -> None:
        await never.wait()

    doomed_transport = await rig.transport("doomed")
    doomed = rig.worker(doomed_transport, hang, instance_id="doomed", drain_grace_s=0.1)
    await rig.start(doomed)
    await rig.send(task(1), task(2))
    await rig.send(task(3))
    await eventually(lambda: len(doomed.calls) == 3)
    survivor = rig.worker(await rig.transport("survivor"), instance_id="survivor")
    await rig.start(survivor)
    await asyncio.sleep(0.2)
    assert survivor.calls == []  # the work is held by the doomed one

    await doomed_transport.close()  # killed: its connection is gone, nothing was acked

    assert await rig.wait_results(3) == ["t1", "t2", "t3"]
    assert sorted(t for t, _ in survivor.calls) == ["t1", "t2", "t3"]
    await asyncio.sleep(0.2)
    assert rig.results() == ["t1", "t2", "t3"]


async def test_a_failing_handler_retries_with_growing_delays_then_dead_letters(rig: Rig) -> None:
    async def fail(task: TaskSubmitted) -> None:
        raise RuntimeError(f"cannot do {task.task_id}")

    worker = rig.worker(await rig.transport("worker"), fail)
    await rig.start(worker)
    await rig.send(task(1))

    dead = await rig.dead.get()
    assert dead.headers[HEADER_REASON] == "retries-exhausted"
    assert dead.headers[HEADER_ATTEMPT] == MAX_ATTEMPTS
    assert dead.headers[HEADER_ERROR] == "RuntimeError: cannot do t1"
    assert dead.headers[HEADER_SOURCE_QUEUE] == rig.queue
    assert dead.headers[HEADER_KIND] == "task.submitted"
    assert [m.message_id for m in rig.codec.decode(dead.body)] == ["t1"]

    times = [at for task_id, at in worker.calls if task_id == "t1"]
    assert len(times) == MAX_ATTEMPTS
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, delay_ms in zip(gaps, DELAYS_MS, strict=True):
        assert delay_ms / 1000 * 0.9 <= gap < delay_ms / 1000 + 2.0, gaps
    assert gaps[1] > gaps[0]  # growing
    assert rig.results() == []
    loop = worker.loops[0]
    assert (loop.stats.retried, loop.stats.dead_lettered) == (MAX_ATTEMPTS - 1, 1)


async def test_garbage_is_dead_lettered_at_once_and_the_next_message_handled(rig: Rig) -> None:
    worker = rig.worker(await rig.transport("worker"))
    await rig.start(worker)
    started = time.monotonic()
    await rig.send(body=b"garbage, not an envelope")

    dead = await rig.dead.get()
    assert time.monotonic() - started < DELAYS_MS[0] / 1000 * 5  # no retry tier on the way
    assert dead.body == b"garbage, not an envelope"
    assert dead.headers[HEADER_REASON] == "bad-magic"
    assert "BadMagicError" in str(dead.headers[HEADER_ERROR])
    assert dead.headers[HEADER_SOURCE_QUEUE] == rig.queue
    assert HEADER_ATTEMPT not in dead.headers

    await rig.send(task(1))
    assert await rig.wait_results(1) == ["t1"]
    assert worker.calls[0][0] == "t1"
    assert worker.loops[0].stats.dead_letter_reasons == {"bad-magic": 1}


async def test_a_message_id_already_handled_is_acked_and_dropped(rig: Rig) -> None:
    worker = rig.worker(await rig.transport("worker"))
    await rig.start(worker)
    await rig.send(task(1))
    assert await rig.wait_results(1) == ["t1"]
    await rig.send(task(1))
    await rig.send(task(2))
    assert await rig.wait_results(2) == ["t1", "t2"]
    await eventually(lambda: worker.loops[0].stats.duplicates == 1)
    assert worker.called("t1") == 1
    assert rig.admin is not None
    await eventually(lambda: worker.loops[0].in_flight == 0)
    assert await rig.admin.queue_depth(rig.queue) == 0


async def test_an_envelope_repeating_a_message_id_is_handled_once_and_acked(rig: Rig) -> None:
    # A result replayed for a second dispatch can leave in the same envelope
    # as its first copy (same message id). The copy is a repeat, never a
    # wait on itself that would leave the envelope unacked in the queue.
    worker = rig.worker(await rig.transport("worker"))
    await rig.start(worker)
    await rig.send(task(1), task(2), task(1))
    assert await rig.wait_results(2) == ["t1", "t2"]
    await eventually(lambda: worker.loops[0].in_flight == 0)
    assert worker.called("t1") == 1
    assert worker.loops[0].stats.duplicates == 1
    assert rig.admin is not None
    assert await rig.admin.queue_depth(rig.queue) == 0


async def test_a_server_side_close_is_recovered_and_consuming_resumes(rig: Rig) -> None:
    release = asyncio.Event()

    async def slow_first(task: TaskSubmitted) -> None:
        if task.task_id == "t1":
            await release.wait()

    transport = await rig.transport("worker")
    worker = rig.worker(transport, slow_first)
    await rig.start(worker)
    await rig.send(task(1))
    await eventually(lambda: worker.called("t1") == 1)

    await lose_connection(rig, transport, "worker")
    release.set()  # t1 finishes on the far side of the outage
    await rig.send(task(2))

    assert await rig.wait_results(2) == ["t1", "t2"]
    await eventually(lambda: transport.is_connected)
    # The redelivered t1 (its ack was lost with the connection) was dropped, not rerun.
    assert worker.called("t1") == 1
    assert worker.called("t2") == 1
    assert worker.health()["status"] == "ok"
    await rig.send(task(3))
    assert await rig.wait_results(3) == ["t1", "t2", "t3"]
    assert rig.admin is not None
    await eventually(lambda: worker.loops[0].in_flight == 0)
    await asyncio.sleep(0.3)
    assert await rig.admin.queue_depth(rig.queue) == 0


async def test_stop_lets_in_flight_work_finish_and_takes_nothing_new(rig: Rig) -> None:
    async def slow(task: TaskSubmitted) -> None:
        await asyncio.sleep(0.5)

    worker = rig.worker(await rig.transport("worker"), slow)
    stop, running = await rig.start(worker)
    await rig.send(task(1))
    await eventually(lambda: worker.called("t1") == 1)
    stop.set()
    await eventually(lambda: worker.stopping)
    await rig.send(task(2))
    async with asyncio.timeout(WAIT):
        await running
    assert await rig.wait_results(1) == ["t1"]
    assert worker.called("t2") == 0
    assert await _depth(rig, 1) == 1  # t2 waits for the next consumer; t1 was acked


async def test_stop_hands_back_what_does_not_finish_within_the_grace(rig: Rig) -> None:
    never = asyncio.Event()

    async def hang(task: TaskSubmitted) -> None:
        await never.wait()

    stuck = rig.worker(await rig.transport("stuck"), hang, instance_id="stuck", drain_grace_s=0.2)
    stop, running = await rig.start(stuck)
    await rig.send(task(1))
    await eventually(lambda: stuck.called("t1") == 1)
    stop.set()
    async with asyncio.timeout(WAIT):
        await running
    assert await _depth(rig, 1) == 1  # handed back, not lost

    successor = rig.worker(await rig.transport("successor"), instance_id="successor")
    await rig.start(successor)
    assert await rig.wait_results(1) == ["t1"]
    assert successor.called("t1") == 1


async def test_sigterm_drains_a_served_service(rig: Rig) -> None:
    async def slow(task: TaskSubmitted) -> None:
        await asyncio.sleep(0.5)

    worker = rig.worker(await rig.transport("worker"), slow)
    serving = asyncio.create_task(serve(worker))
    await eventually(worker.started.is_set)
    await rig.send(task(1))
    await eventually(lambda: worker.called("t1") == 1)
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(WAIT):
        await serving
    assert await rig.wait_results(1) == ["t1"]
    assert not worker.transport.is_connected  # serve closes the connection on the way out
    assert await _depth(rig, 0) == 0


async def test_a_served_process_freezes_its_start_up_heap_once_started(rig: Rig) -> None:
    """``boson run <service>`` serves with ``freeze_heap``; the in-process cluster does not."""

    async def nothing(task: TaskSubmitted) -> None:
        return None

    for freeze_heap in (False, True):
        worker = rig.worker(await rig.transport(f"worker-{freeze_heap}"), nothing)
        stop = asyncio.Event()
        serving = asyncio.create_task(serve(worker, stop=stop, freeze_heap=freeze_heap))
        try:
            await eventually(worker.started.is_set)
            await asyncio.sleep(0.05)
            assert (gc.get_freeze_count() > 0) is freeze_heap
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                await serving
            gc.unfreeze()


async def _depth(rig: Rig, expected: int) -> int:
    """The queue's depth once it settles on ``expected`` (quorum queues count lazily)."""
    assert rig.admin is not None
    depth = -1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        depth = await rig.admin.queue_depth(rig.queue)
        if depth == expected:
            break
        await asyncio.sleep(0.05)
    return depth


async def test_dead_letters_of_a_removed_consumer_stay_counted(rig: Rig) -> None:
    """A loop taken away (the balancer done with a dead node's queue) keeps
    its dead letters in the service's count."""
    worker = rig.worker(await rig.transport("worker"))
    await rig.start(worker)
    await rig.send(body=b"garbage, not an envelope")
    await rig.dead.get()
    await eventually(lambda: worker.health()["dead_lettered"] == 1)

    await worker.remove_consumer(worker.loops[0])
    assert worker.loops == []
    assert worker.health()["dead_lettered"] == 1
