"""The transfer benchmark's bare aio-pika baseline measures what its MB/s does.

Its CPU window (``--cpu``) is opened after the queue is declared and consumed
from, and closed before the queue is deleted: a quorum queue's declare and
delete cost the broker more CPU than moving 50 MiB through it, and the
upload's own connection and topology set-up stay outside its window too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import pytest

from benchmarks.transfer import bare_aio_pika
from tests.conftest import AmqpBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


async def queue_state(url: str, name: str) -> tuple[int, int] | None:
    """(messages ready, consumers) of queue ``name``, or None if it does not exist."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        declared = queue.declaration_result
        return declared.message_count or 0, declared.consumer_count or 0
    finally:
        await connection.close()


async def test_bare_is_measured_from_first_publish_to_last_delivery_only(
    amqp_broker: AmqpBroker, namespace: str
) -> None:
    name = f"{namespace}.bare"
    seen: list[tuple[str, tuple[int, int] | None]] = []

    @contextlib.asynccontextmanager
    async def window() -> AsyncIterator[object]:
        seen.append(("open", await queue_state(amqp_broker.url, name)))
        yield None
        seen.append(("close", await queue_state(amqp_broker.url, name)))

    seconds = await bare_aio_pika(amqp_broker.url, name, b"x" * 5000, chunk=1000, window=window)
    assert seconds > 0
    # Open: declared, its consumer attached, nothing sent yet. Close: every
    # message taken, the queue not yet deleted.
    assert seen == [("open", (0, 1)), ("close", (0, 1))]
    assert await queue_state(amqp_broker.url, name) is None
