"""A result whose publish failed reaches its client, however many tasks finish meanwhile.

The node queue's consume loop, the executor's handlers and the in-memory
broker, as the executor wires them: a result's publish is refused (as a
broker nacks one while a quorum queue elects a leader), its delivery is
handed back only once its envelope's long sibling ends, and by then more
tasks have finished on the node than it keeps results of.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from boson_services.executor.census import NodeMessage, NodeQueue
from boson_services.executor.pool import TaskRunner
from boson_shared.bus.abc import Delivery
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    HeldWorkBarrier,
    ResourceVector,
    TaskAssigned,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import rk_node, rk_result
from boson_shared.errors import PublishNotConfirmedError
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import BatchingPublisher
from tests.support.failing_publish import FailsFirstPublish
from tests.unit.executor.conftest import BUILTINS, NAMES, SAMPLE_HANDLERS, executor_handlers

WAIT = 10.0
KEPT = 2
codec = EnvelopeCodec(Keyring.ephemeral())


class Results:
    """A client's reply queue: the results that reached it."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[TaskResult] = asyncio.Queue()

    async def __call__(self, delivery: Delivery) -> None:
        for message in codec.decode(delivery.body):
            assert isinstance(message, TaskResult)
            self.arrived.put_nowait(message)
        await delivery.ack()

    async def next(self) -> TaskResult:
        async with asyncio.timeout(WAIT):
            return await self.arrived.get()


def assigned(handler: str, task_id: str, client: str, **params: object) -> TaskAssigned:
    task = TaskSubmitted(task_id=task_id, handler=handler, params=params, reply_to=client)
    return TaskAssigned(
        message_id=f"{task_id}.a1",
        task=task,
        demand=ResourceVector(cpu=1, memory=1),
        node_id="n1",
    )


@dataclass
class Node:
    transport: MemoryTransport
    refusing: FailsFirstPublish
    loop: ConsumeLoop[NodeMessage]
    clients: dict[str, Results]

    async def send(self, *tasks: TaskAssigned) -> None:
        await self.transport.publish(NAMES.work_exchange, rk_node("n1"), codec.encode(list(tasks)))


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    broker = MemoryBroker()
    transport = MemoryTransport(broker)
    await transport.connect()
    await transport.declare(NAMES.node("n1", 60_000))
    clients = {"client-a": Results(), "client-b": Results()}
    for client, results in clients.items():
        await transport.declare(NAMES.client(client, 0))
        await transport.consume(NAMES.client_queue(client), results, prefetch=0)
    refusing = FailsFirstPublish(
        transport,
        lambda _, routing_key: routing_key == rk_result("client-a"),
        PublishNotConfirmedError("publish nacked: a queue is electing a leader"),
    )
    runner = TaskRunner(2, start_method="forkserver")
    handlers = executor_handlers(runner, [BUILTINS, SAMPLE_HANDLERS], replay_memory=KEPT)
    hooks = NodeQueue(handlers)
    spec = ConsumerSpec[NodeMessage](
        queue=NAMES.node_queue("n1"),
        accepts=(TaskAssigned, HeldWorkBarrier),
        handler=hooks.on_message,
        prefetch=8,
        on_exhausted=hooks.on_exhausted,
        on_retry=hooks.on_retry,
        max_attempts=hooks.max_attempts,
    )
    loop = ConsumeLoop(
        spec,
        transport=transport,
        codec=codec,
        publisher=BatchingPublisher(refusing, codec),  # type: ignore[arg-type]
        names=NAMES,
        seen=SeenIds(1000),
    )
    await loop.start()
    try:
        yield Node(transport, refusing, loop, clients)
    finally:
        await loop.stop()
        await loop.drain(1.0)
        await runner.close()
        await transport.close()
        broker.close()


async def test_a_refused_result_reaches_its_client_after_more_results_than_are_kept(
    node: Node, tmp_path: Path
) -> None:
    gate = tmp_path / "long-task-may-end"
    await node.send(
        assigned("noop", "a", "client-a", echo="a"),
        assigned("wait_for_file", "long", "client-b", path=str(gate)),
    )
    async with asyncio.timeout(WAIT):
        while not node.refusing.failed:  # noqa: ASYNC110 - the loop publishes it
            await asyncio.sleep(0.01)
    # More tasks finish here than results are kept while "a" waits, unacked,
    # for its envelope's long sibling.
    others = [assigned("noop", f"other-{n}", "client-b") for n in range(KEPT + 1)]
    for other in others:
        await node.send(other)
    seen = {(await node.clients["client-b"].next()).task_id for _ in others}
    assert seen == {other.task.task_id for other in others}
    gate.touch()  # the long task ends: the envelope is handed back and redelivered
    result = await node.clients["client-a"].next()
    assert (result.task_id, result.status, result.output) == ("a", "succeeded", "a")
    assert node.loop.stats.handed_back == 1
