"""The monitor's sweep of reply queues left by clients that are gone.

A client that crashes with tasks out leaves its quorum reply queue (no
``x-expires``); the sweep deletes it once it has had no consumer for the
configured time, and leaves alone the queue a live client consumes.
"""

from __future__ import annotations

import time

import pytest

from boson.client import Client
from boson_services.monitor.reply_queues import AbandonedReplyQueues
from boson_shared.bus.abc import Delivery
from boson_shared.contract.channel_types import CLIENT_QUEUE_EXPIRES_MS
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskResult
from boson_shared.contract.topology import rk_result
from boson_shared.errors import UnroutableError
from boson_shared.settings import BosonSettings
from tests.conftest import TransportFactory
from tests.support.fakes import Clock

GONE_AFTER_S = 60.0
KEYS = Keyring({"k1": bytes(range(32))})


async def _ack(delivery: Delivery) -> None:
    await delivery.ack()


def _result(client_id: str) -> TaskResult:
    return TaskResult(
        task_id=f"{client_id}-t",
        handler="noop",
        status="succeeded",
        reply_to=client_id,
        submitted_at=time.time(),
    )


async def test_a_reply_queue_unconsumed_long_enough_is_deleted_and_a_live_one_kept(
    transport_factory: TransportFactory, namespace: str
) -> None:
    settings = BosonSettings(namespace=namespace, instance_id="c")
    names = settings.names()
    codec = EnvelopeCodec(KEYS)
    admin = await transport_factory()
    # The crashed client: its queue exists, with a result in it, and nobody consumes it.
    await admin.declare(names.client("crashed", CLIENT_QUEUE_EXPIRES_MS))
    await admin.publish(
        names.events_exchange, rk_result("crashed"), codec.encode([_result("crashed")])
    )
    alive = Client(settings, await transport_factory(), codec, client_id="alive")
    await alive.start()
    clock = Clock()
    sweep = AbandonedReplyQueues(admin, names, GONE_AFTER_S, clock=clock)
    try:
        sweep.seen("crashed")
        sweep.seen("alive")
        assert await sweep.sweep() == []  # first seen unconsumed now
        clock.now = GONE_AFTER_S - 1
        assert await sweep.sweep() == []  # not long enough yet
        clock.now = GONE_AFTER_S + 1
        assert await sweep.sweep() == [names.client_queue("crashed")]
        assert sweep.watched == 1
        with pytest.raises(UnroutableError):
            await admin.publish(
                names.events_exchange, rk_result("crashed"), b"late", mandatory=True
            )
        await admin.publish(
            names.events_exchange,
            rk_result("alive"),
            codec.encode([_result("alive")]),
            mandatory=True,
        )
        got = await alive.result("alive-t", timeout=10)
        assert got.status == "succeeded"
    finally:
        await alive.close()


async def test_a_queue_consumed_again_starts_its_wait_afresh(
    transport_factory: TransportFactory, namespace: str
) -> None:
    settings = BosonSettings(namespace=namespace, instance_id="c")
    names = settings.names()
    admin = await transport_factory()
    await admin.declare(names.client("back", CLIENT_QUEUE_EXPIRES_MS))
    clock = Clock()
    sweep = AbandonedReplyQueues(admin, names, GONE_AFTER_S, clock=clock)
    sweep.seen("back")
    assert await sweep.sweep() == []
    clock.now = GONE_AFTER_S / 2
    consumer = await transport_factory()
    subscription = await consumer.consume(names.client_queue("back"), _ack, prefetch=1)
    assert await sweep.sweep() == []  # consumed: the wait is over
    await subscription.cancel()
    clock.now = GONE_AFTER_S + 1
    assert await sweep.sweep() == []  # unconsumed again only since now
    clock.now = 2 * GONE_AFTER_S + 2
    assert await sweep.sweep() == [names.client_queue("back")]


def test_at_most_capacity_client_ids_are_watched() -> None:
    sweep = AbandonedReplyQueues(
        None,  # type: ignore[arg-type]  # seen() never touches the broker
        BosonSettings().names(),
        GONE_AFTER_S,
        clock=Clock(),
        capacity=3,
    )
    for client_id in ("a", "b", "c", "a", "d"):
        sweep.seen(client_id)
    assert sweep.watched == 3
