"""A result the broker keeps nacking reaches its client once it can, however late.

A real executor on RabbitMQ. The client's reply queue refuses publishes (a
full queue with ``x-overflow=reject-publish`` nacks deterministically, as a
quorum queue electing a leader does): the executor's consume loop hands the
assignment back after each nacked result and publishes again on each
redelivery. Meanwhile more tasks finish on the node than it keeps results
of. Once the queue takes messages again, the result must arrive: a
redelivery that found its task finished and no result kept was dropped as
a repeat, and the result lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika
import pytest

from boson_services.executor.app import ExecutorService
from boson_services.executor.settings import ExecutorSettings
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    Message,
    ResourceVector,
    TaskAssigned,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import rk_node, rk_result
from boson_shared.runtime.service import start_in_background, stop_all
from boson_shared.runtime.tap import Tap
from tests.conftest import AmqpBroker

NODE = "nacked-node"
KEPT = 2
"""Results the executor keeps to publish again (few, so that a few tasks outrun them)."""
WAIT = 20.0


def assignment(task_id: str, client: str) -> TaskAssigned:
    task = TaskSubmitted(task_id=task_id, handler="noop", params={"echo": task_id}, reply_to=client)
    return TaskAssigned(task=task, demand=ResourceVector(cpu=1, memory=1), node_id=NODE)


def result_of(task_id: str) -> Callable[[Message], bool]:
    return lambda message: isinstance(message, TaskResult) and message.task_id == task_id


@pytest.mark.broker
@pytest.mark.timeout(90)
async def test_a_nacked_result_reaches_its_client_after_more_results_than_are_kept(
    amqp_broker: AmqpBroker, namespace: str
) -> None:
    codec = EnvelopeCodec(Keyring.ephemeral())

    def transport() -> AmqpTransport:
        return AmqpTransport(amqp_broker.url, connection_name=f"boson-test {namespace}")

    executor = ExecutorService(
        ExecutorSettings(
            namespace=namespace, instance_id=NODE, node_id=NODE, slots=2, drain_grace_s=0.5
        ),
        transport(),
        codec,
    )
    executor.handlers.replay_memory = KEPT
    names = executor.names
    running = [await start_in_background(executor, timeout=15)]
    admin = transport()
    await admin.connect()
    tap = Tap(admin, codec, f"{namespace}.tap-b", [(names.events_exchange, rk_result("client-b"))])
    connection = await aio_pika.connect(amqp_broker.url)
    channel = await connection.channel()
    reply_queue = await channel.declare_queue(
        f"{namespace}.client-a-replies",
        durable=True,
        arguments={"x-queue-type": "classic", "x-max-length": 1, "x-overflow": "reject-publish"},
    )
    try:
        await tap.start()
        await channel.default_exchange.publish(aio_pika.Message(b"filler"), reply_queue.name)
        await reply_queue.bind(names.events_exchange, rk_result("client-a"))
        loop = next(loop for loop in executor.loops if loop.spec.queue == names.node_queue(NODE))

        async def publish(assigned: TaskAssigned) -> None:
            body = codec.encode([assigned])
            await admin.publish(names.work_exchange, rk_node(NODE), body, mandatory=True)

        async def until_handed_back(count: int) -> None:
            async with asyncio.timeout(WAIT):
                while loop.stats.handed_back < count:  # noqa: ASYNC110 - the executor's state
                    await asyncio.sleep(0.02)

        await publish(assignment("a", "client-a"))
        await until_handed_back(1)  # its result was nacked
        others = [assignment(f"other-{n}", "client-b") for n in range(KEPT + 1)]
        for other in others:
            await publish(other)
        for other in others:
            await tap.wait_for(result_of(other.task.task_id), WAIT)
        # A few more rounds of nacks: the redeliveries after "a"'s result was
        # no longer kept were handled (without the fix, dropped and acked).
        await until_handed_back(loop.stats.handed_back + 2)
        await reply_queue.purge()  # the queue takes messages again
        async with asyncio.timeout(WAIT):
            while (arrived := await reply_queue.get(fail=False)) is None:  # noqa: ASYNC110 - a broker's queue
                await asyncio.sleep(0.05)
        (result,) = codec.decode(arrived.body)
        assert isinstance(result, TaskResult)
        assert (result.task_id, result.status, result.output) == ("a", "succeeded", "a")
    finally:
        await tap.close()
        await reply_queue.delete(if_unused=False, if_empty=False)
        await connection.close()
        await admin.close()
        await stop_all(running)
