"""Adaptive batching, counted at the broker.

A tap queue bound to the same exchange and routing key as the real consumer
receives a copy of every envelope that crosses the broker, so the counts
here are the broker's, not the publisher's own bookkeeping. Runs on both
transports; the AMQP run is the one the issue asks for.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from boson_shared.bus.abc import Delivery
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import Message, TaskSubmitted
from boson_shared.contract.topology import Names
from boson_shared.runtime.publisher import BatchingPublisher, Route
from boson_shared.runtime.tap import Tap
from tests.conftest import TrackingTransport, TransportFactory
from tests.support.waiting import until

BURST = 1000
MAX_ENVELOPES = 100
KEY = "job.burst"
WAIT = 15.0


def task(number: int) -> TaskSubmitted:
    return TaskSubmitted(task_id=f"t{number}", handler="noop", reply_to="c", data=b"x" * 64)


def is_item(message_id: str) -> Callable[[Message], bool]:
    return lambda message: message.message_id == message_id


class Consumer:
    """The real consumer's side: every item id it receives."""

    def __init__(self, codec: EnvelopeCodec) -> None:
        self.codec = codec
        self.ids: Counter[str] = Counter()
        self.envelopes = 0

    async def __call__(self, delivery: Delivery) -> None:
        self.envelopes += 1
        for message in self.codec.decode(delivery.body):
            self.ids[message.message_id] += 1
        await delivery.ack()


@dataclass
class Setup:
    transport: TrackingTransport
    codec: EnvelopeCodec
    route: Route
    tap: Tap
    consumer: Consumer


@pytest.fixture
async def setup(transport_factory: TransportFactory, namespace: str) -> AsyncIterator[Setup]:
    names = Names(namespace)
    codec = EnvelopeCodec(Keyring.ephemeral())
    publishing = await transport_factory()
    watching = await transport_factory()
    queue = f"{namespace}.jobs"
    await watching.declare(names.work_queue(queue, [KEY]))
    consumer = Consumer(codec)
    await watching.consume(queue, consumer, prefetch=200)
    tap = Tap(watching, codec, f"{namespace}.tap", [(names.work_exchange, KEY)])
    await tap.start()
    try:
        yield Setup(publishing, codec, Route(names.work_exchange, KEY), tap, consumer)
    finally:
        await tap.close()


async def test_a_burst_of_1000_crosses_the_broker_in_at_most_100_envelopes(setup: Setup) -> None:
    publisher = BatchingPublisher(setup.transport, setup.codec, max_items=100)
    items = [task(n) for n in range(BURST)]
    # A burst: a thousand publishers at once, each waiting for its own confirm.
    await asyncio.gather(*(publisher.publish(setup.route, item) for item in items))

    await until(lambda: len(setup.tap.messages) >= BURST, "the tap to see every item", WAIT)
    await until(lambda: sum(setup.consumer.ids.values()) >= BURST, "the consumer to get all", WAIT)
    await asyncio.sleep(0.2)  # anything extra would arrive now
    envelopes = len(setup.tap.envelopes)
    assert envelopes <= MAX_ENVELOPES, f"{envelopes} envelopes for {BURST} items"
    assert setup.consumer.envelopes == envelopes
    # No loss, no duplication, at the tap and at the real consumer.
    expected = {item.message_id for item in items}
    tapped = Counter(m.message_id for m in setup.tap.messages)
    assert set(tapped) == expected
    assert set(tapped.values()) == {1}
    assert set(setup.consumer.ids) == expected
    assert set(setup.consumer.ids.values()) == {1}
    assert publisher.stats.envelopes == envelopes  # the publisher's own count agrees


async def test_publish_many_packs_too_and_keeps_order(setup: Setup) -> None:
    publisher = BatchingPublisher(setup.transport, setup.codec, max_items=100)
    items = [task(n) for n in range(BURST)]
    await publisher.publish_many([(setup.route, item) for item in items])
    await until(lambda: len(setup.tap.messages) >= BURST, "the tap to see every item", WAIT)
    assert len(setup.tap.envelopes) <= MAX_ENVELOPES
    order = [m.message_id for m in setup.tap.messages]
    assert order == [item.message_id for item in items]


async def test_alone_one_item_goes_out_at_once(setup: Setup) -> None:
    publisher = BatchingPublisher(setup.transport, setup.codec, max_items=100)
    for number in range(3):  # idle between items: each alone, each at once
        item = task(number)
        started = time.monotonic()
        await publisher.publish(setup.route, item)
        confirmed = time.monotonic() - started
        await setup.tap.wait_for(is_item(item.message_id), timeout=WAIT)
        arrived = time.monotonic() - started
        assert confirmed < 0.25, f"confirm took {confirmed:.3f}s"
        assert arrived < 0.5, f"arrival took {arrived:.3f}s"
        assert len(setup.tap.envelopes) == number + 1
        assert len(setup.codec.decode(setup.tap.envelopes[-1])) == 1
