"""Two clients under one client id may be connected at once.

Rolling keys out does exactly that: a client under the new key connects
while the one under the old key still waits for its results. Each watches
the dead letters on a queue of its own (exclusive to its connection).
"""

from __future__ import annotations

import time

import pytest

from boson.client import Client
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskResult
from boson_shared.contract.topology import rk_result
from boson_shared.errors import UnroutableError
from boson_shared.settings import BosonSettings
from tests.conftest import TransportFactory

KEYS = Keyring({"k1": bytes(range(32))})


async def test_a_second_client_under_the_same_id_starts_beside_the_first(
    transport_factory: TransportFactory, namespace: str
) -> None:
    settings = BosonSettings(namespace=namespace, instance_id="c")
    first = Client(
        settings,
        await transport_factory(),
        EnvelopeCodec(KEYS),
        client_id="same",
        owns_transport=False,
    )
    second = Client(
        settings,
        await transport_factory(),
        EnvelopeCodec(KEYS),
        client_id="same",
        owns_transport=False,
    )
    await first.start()
    try:
        await second.start()
        await second.close()
    finally:
        await first.close()


async def test_closing_one_client_leaves_the_reply_queue_to_the_other(
    transport_factory: TransportFactory, namespace: str
) -> None:
    """The first to close, with nothing pending, must not delete the queue the other reads.

    It did: the second client's consumer was cancelled with the queue, and
    every later result under the id routed nowhere (the key rotation under
    load waited for them in vain).
    """
    settings = BosonSettings(namespace=namespace, instance_id="c")
    names = settings.names()
    codec = EnvelopeCodec(KEYS)
    first = Client(
        settings, await transport_factory(), codec, client_id="same", owns_transport=False
    )
    second = Client(
        settings, await transport_factory(), codec, client_id="same", owns_transport=False
    )
    publisher = await transport_factory()
    await first.start()
    await second.start()
    try:
        await first.close()
        result = TaskResult(
            task_id="after-close",
            handler="noop",
            status="succeeded",
            reply_to="same",
            submitted_at=time.time(),
        )
        await publisher.publish(
            names.events_exchange,
            rk_result("same"),
            codec.encode([result]),
            mandatory=True,
        )
        got = await second.result("after-close", timeout=10)
        assert got.status == "succeeded"
    finally:
        await second.close()
    # The last one out, with nothing pending, deletes it.
    assert await publisher.queue_consumers(names.client_queue("same")) == 0
    with pytest.raises(UnroutableError):
        await publisher.publish(names.events_exchange, rk_result("same"), b"late", mandatory=True)
