"""Work that routes to no queue is refused to its publisher, never dropped;
a reply that routes to no queue is parked in the dead letters.

A task published while its queue does not exist (not declared yet, or
deleted) used to be confirmed by the broker and vanish. Work routes are
published ``mandatory``: the publisher gets :class:`UnroutableError`, and a
retry once the queue exists goes through.
"""

from __future__ import annotations

import asyncio

import pytest

from boson.client import Client
from boson_shared.bus.abc import Delivery
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import Alert, TaskSubmitted, failed_result
from boson_shared.contract.topology import HEADER_ERROR, HEADER_KIND, HEADER_REASON, rk_result
from boson_shared.errors import UnroutableError
from boson_shared.runtime.publisher import BatchingPublisher, Route
from boson_shared.settings import BosonSettings
from tests.conftest import TransportFactory

KEYS = Keyring({"k1": bytes(range(32))})


async def test_a_task_submitted_with_no_submit_queue_is_refused_not_lost(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport = await transport_factory()
    settings = BosonSettings(namespace=namespace, instance_id="c")
    client = Client(settings, transport, EnvelopeCodec(KEYS), owns_transport=False)
    await client.start()
    try:
        names = settings.names()
        await transport.delete_queue(names.submit_queue)
        with pytest.raises(UnroutableError, match="unroutable"):
            await client.submit("stats", params={"n": 1})
        # Once the queue exists again, the same submission goes through and waits there.
        await transport.declare(names.submit())
        await client.submit("stats", params={"n": 1})
        assert await transport.queue_depth(names.submit_queue) == 1
    finally:
        await client.close()


async def test_events_nobody_listens_to_are_still_dropped_quietly(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport = await transport_factory()
    names = BosonSettings(namespace=namespace).names()
    await transport.declare(names.base())
    publisher = BatchingPublisher(transport, EnvelopeCodec(KEYS))
    alert = Alert(reason="overload", severity="info", detail="")
    await publisher.publish(Route(names.events_exchange, "alert.overload"), alert)
    task = TaskSubmitted(task_id="t1", handler="stats", reply_to="c1")
    with pytest.raises(UnroutableError):
        await publisher.publish(Route(names.work_exchange, "task.submit", mandatory=True), task)
    await publisher.close()


async def test_a_result_for_a_client_with_no_queue_is_parked_with_its_reason(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport = await transport_factory()
    names = BosonSettings(namespace=namespace).names()
    await transport.declare(names.base())
    codec = EnvelopeCodec(KEYS)
    publisher = BatchingPublisher(transport, codec)
    task = TaskSubmitted(task_id="t1", handler="stats", reply_to="gone-client")
    result = failed_result(task, "Boom", "no luck", attempts=1)
    await publisher.publish(Route.reply(names, rk_result("gone-client")), result)
    assert publisher.stats.parked == 1

    parked: list[Delivery] = []
    arrived = asyncio.Event()

    async def take(delivery: Delivery) -> None:
        parked.append(delivery)
        await delivery.ack()
        arrived.set()

    await transport.consume(names.dead_letter_queue, take, prefetch=10)
    async with asyncio.timeout(10):
        await arrived.wait()
    (delivery,) = parked
    assert delivery.headers[HEADER_REASON] == "unroutable"
    assert delivery.headers[HEADER_KIND] == "task.result"
    assert "result.gone-client" in str(delivery.headers[HEADER_ERROR])
    assert delivery.routing_key == "result.gone-client"
    assert codec.decode(delivery.body) == [result]

    # With the client's queue bound, the same route delivers, nothing parked.
    await transport.declare(names.client("here", 60_000))
    await publisher.publish(Route.reply(names, rk_result("here")), result)
    assert publisher.stats.parked == 1
    assert await transport.queue_depth(names.client_queue("here")) == 1
    await publisher.close()
