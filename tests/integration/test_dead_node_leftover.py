"""A dead node's leftover whose result reached the balancer but not the client.

An executor publishes a task's result once, to the events exchange, which
fans it out to the client's reply queue, the task record and the services'
own queues. When the broker nacks that publish (one queue refused it: a
quorum queue electing a leader after a node died), the other queues may
already hold it. The executor then hands the task's assignment back to its
node queue and publishes again when it comes back — unless its node is
declared down first and the balancer drains that queue. The balancer has
seen the result: if it drops the leftover as done, the client never gets it.

The first test shows the broker's side on RabbitMQ: a nacked fan-out
publish still lands in the queue that took it. The second leaves the
control plane in that state (the result in the balancer's queue only, the
assignment back in the dead node's queue) and checks the client gets the
result, once, without the task running again. Runs on RabbitMQ (the
``broker`` mark) and on the in-memory broker.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from boson.client import TaskRequest
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.messages import TaskResult
from boson_shared.contract.topology import RK_ALL_RESULTS
from boson_shared.errors import PublishNotConfirmedError
from boson_shared.runtime.publisher import BatchingPublisher, Route
from tests.conftest import AmqpBroker
from tests.support.control_plane import WAIT, ControlPlane
from tests.support.waiting import until, wait_until


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_a_nacked_fan_out_publish_still_reaches_the_queue_that_took_it(
    amqp_broker: AmqpBroker, namespace: str
) -> None:
    # A full queue with x-overflow=reject-publish nacks deterministically: it
    # stands in for the client's reply queue while its leader is elected.
    exchange, refusing, taking = f"{namespace}.x", f"{namespace}.refusing", f"{namespace}.taking"
    admin = await aio_pika.connect(amqp_broker.url)
    channel = await admin.channel()
    transport = AmqpTransport(amqp_broker.url, connection_name=f"boson-test {namespace}")
    try:
        fanout = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC)
        full = await channel.declare_queue(
            refusing,
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-max-length": 0,
                "x-overflow": "reject-publish",
            },
        )
        other = await channel.declare_queue(
            taking, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await full.bind(fanout, "result.#")
        await other.bind(fanout, "result.#")
        await transport.connect()
        with pytest.raises(PublishNotConfirmedError, match="nacked"):
            await transport.publish(exchange, "result.client", b"a result")

        # The nack may come before the quorum queue reports what it took
        # (its count is the leader's, applied after the refusal): poll.
        async def took_it() -> bool:
            return await transport.queue_depth(taking) == 1

        await wait_until(took_it, timeout=10.0)
        assert await transport.queue_depth(refusing) == 0
    finally:
        await transport.close()
        for name in (refusing, taking):
            await channel.queue_delete(name, if_unused=False, if_empty=False)
        await channel.exchange_delete(exchange)
        await admin.close()


async def test_a_dead_nodes_leftover_whose_result_the_client_missed_reaches_it(
    plane: ControlPlane,
) -> None:
    await plane.start_control_plane()
    # binpack sends the task to the most allocated node: "doomed", which sits on it.
    doomed = await plane.start_node("doomed", 5_000, hold_s=60.0, prefetch_factor=1)
    live = await plane.start_node("live", 1_000, hold_s=0.0, prefetch_factor=1)
    await plane.until_scheduler_knows(2)
    results_tap = await plane.tap("results", doomed.names.events_exchange, RK_ALL_RESULTS)
    client = await plane.client()
    (handle,) = await client.submit_many([TaskRequest("noop", complexity=1, data_size=0)])
    await until(lambda: len(doomed.received) == 1, "the doomed node holds the task", WAIT)

    # It ran the task; its result's fan-out was nacked after reaching the
    # balancer's queue but not the client's (shown above on RabbitMQ).
    task = doomed.received[0].task
    result = TaskResult(
        message_id=f"{task.task_id}.result",
        task_id=task.task_id,
        handler=task.handler,
        status="succeeded",
        output={"node": "doomed"},
        node_id="doomed",
        reply_to=task.reply_to,
        submitted_at=task.submitted_at,
    )
    balancer = plane.balancer
    assert balancer is not None
    assert plane.admin is not None
    publisher = BatchingPublisher(plane.admin, plane.codec)
    await publisher.publish(Route("", balancer.events_queue), result)
    await until(lambda: task.task_id in balancer.handlers.finished, "the balancer saw it", WAIT)

    # Its assignment goes back to its queue and the node is declared down.
    doomed.heartbeating = False
    await doomed.transport.close()

    shown = await handle.result(WAIT)
    assert shown.node_id == "doomed"
    assert shown.output == {"node": "doomed"}
    assert "doomed" in balancer.draining
    assert balancer.handlers.replayed_total == 1
    await asyncio.sleep(0.3)
    assert client.duplicates_dropped == 0
    assert live.received == []  # it did not run again
    assert [m.task_id for m in results_tap.messages if isinstance(m, TaskResult)] == [task.task_id]
