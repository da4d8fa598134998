"""On RabbitMQ, a connection's frames leave in one socket write per loop turn.

Deliveries settled together (a consumer acking a burst; publishes issued in
one turn) cost one ``send``, not one each — and every frame still does what
it should: all acks land (nothing is redelivered), every publish is confirmed.
"""

from __future__ import annotations

import asyncio

import pytest

from boson_shared.bus.abc import Delivery
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.topology import QueueSpec, Topology
from tests.conftest import AmqpBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

BURST = 200


async def test_a_burst_of_acks_and_publishes_takes_few_socket_writes(
    amqp_broker: AmqpBroker, namespace: str
) -> None:
    transport = AmqpTransport(amqp_broker.url, connection_name=f"boson-test {namespace}")
    await transport.connect()
    queue = f"{namespace}.coalesce"
    topology = Topology(queues=(QueueSpec(queue),))
    try:
        await transport.declare(topology)
        writer = transport.transport_factory.writer
        assert writer is not None
        frames, writes = writer.frames, writer.writes
        await asyncio.gather(
            *(transport.publish("", queue, f"m{i}".encode()) for i in range(BURST))
        )
        publish_frames = writer.frames - frames
        assert publish_frames >= BURST

        held: list[Delivery] = []
        all_here = asyncio.Event()

        async def hold(delivery: Delivery) -> None:
            held.append(delivery)
            if len(held) == BURST:
                all_here.set()

        subscription = await transport.consume(queue, hold, prefetch=BURST)
        async with asyncio.timeout(20):
            await all_here.wait()
        before_acks = (writer.frames, writer.writes)
        await asyncio.gather(*(delivery.ack() for delivery in held))
        await asyncio.sleep(0.05)
        ack_frames = writer.frames - before_acks[0]
        ack_writes = writer.writes - before_acks[1]
        assert ack_frames == BURST
        # Acked in one turn: a handful of writes (aiormq's write queue holds
        # ten frames at a time), not one per ack.
        assert ack_writes <= BURST // 5, (ack_frames, ack_writes)
        assert writer.writes - writes < writer.frames - frames

        await subscription.cancel()
    finally:
        await transport.close()
    # Every ack reached the broker: closing the connection handed nothing back.
    checker = AmqpTransport(amqp_broker.url, connection_name=f"boson-test {namespace}")
    await checker.connect()
    try:
        assert await checker.queue_depth(queue) == 0
    finally:
        await checker.delete_queue(queue)
        await checker.close()
