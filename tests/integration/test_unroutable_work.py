"""Work that routes to no queue is refused to its publisher, never dropped.

A task published while its queue does not exist (not declared yet, or
deleted) used to be confirmed by the broker and vanish. Work routes are
published ``mandatory``: the publisher gets :class:`UnroutableError`, and a
retry once the queue exists goes through.
"""

from __future__ import annotations

import pytest

from boson.client import Client
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import Alert, TaskSubmitted
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
