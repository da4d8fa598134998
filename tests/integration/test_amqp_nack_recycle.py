"""A nacked publish reopens the publishing channel, and publishing carries on.

A full queue with ``x-overflow=reject-publish`` nacks deterministically,
which stands in for the nacks a channel can keep getting after a broker node
dies (``AmqpTransport._recycle_publisher``).
"""

from __future__ import annotations

import aio_pika
import pytest

from boson_shared.bus.amqp import AmqpTransport
from boson_shared.errors import PublishNotConfirmedError
from tests.conftest import AmqpBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


async def test_a_nack_reopens_the_publishing_channel(
    amqp_broker: AmqpBroker, namespace: str
) -> None:
    full, other = f"{namespace}.full", f"{namespace}.other"
    admin = await aio_pika.connect(amqp_broker.url)
    channel = await admin.channel()
    transport = AmqpTransport(amqp_broker.url, connection_name=f"boson-test {namespace}")
    try:
        await channel.declare_queue(
            full,
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-max-length": 1,
                "x-overflow": "reject-publish",
            },
        )
        await channel.declare_queue(other, durable=True, arguments={"x-queue-type": "quorum"})
        await transport.connect()
        state = transport._state
        assert state is not None
        await transport.publish("", full, b"fits")
        before = await state.publisher.get_underlay_channel()
        with pytest.raises(PublishNotConfirmedError, match="nacked"):
            await transport.publish("", full, b"does not fit")
        await transport.publish("", other, b"after the nack")
        after = await state.publisher.get_underlay_channel()
        assert before.is_closed
        assert after is not before
        assert not after.is_closed
        # Another nack within the second does not close the new channel again.
        with pytest.raises(PublishNotConfirmedError, match="nacked"):
            await transport.publish("", full, b"still does not fit")
        assert await state.publisher.get_underlay_channel() is after
        assert await transport.queue_depth(other) == 1
    finally:
        await transport.close()
        for name in (full, other):
            await channel.queue_delete(name, if_unused=False, if_empty=False)
        await admin.close()
