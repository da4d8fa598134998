"""A task looking up missing queues on the AMQP transport ends when cancelled.

The monitor polls the depth of every live node's queue; a node without one
makes each look-up fail, which closes the admin channel. A cancel that
crossed that close reached the caller as the channel's error, the poll took
it for a broker failure and went on, and the monitor never stopped
(``boson_shared.bus.cancel_wins``). The race is narrow, so it is run many
times, each cancel at a different moment of the polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from boson_shared.bus.amqp import AmqpTransport
from tests.conftest import AmqpBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

_TRIALS = 80


async def _poll_missing_queues(transport: AmqpTransport, namespace: str) -> None:
    """What the monitor's queue poll does (a failed look-up is not an outage)."""
    while True:
        for number in range(50):
            with contextlib.suppress(Exception):
                await transport.queue_depth(f"{namespace}.missing-{number}")
        await asyncio.sleep(0)


async def test_cancelling_a_poll_of_missing_queues_ends_it(
    amqp_broker: AmqpBroker, namespace: str
) -> None:
    transport = AmqpTransport(amqp_broker.url, connection_name=f"boson-test {namespace}")
    await transport.connect()
    moments = random.Random(22)
    carried_on = 0
    try:
        for _ in range(_TRIALS):
            polling = asyncio.create_task(_poll_missing_queues(transport, namespace))
            await asyncio.sleep(moments.uniform(0.01, 0.2))
            polling.cancel()
            done, _ = await asyncio.wait({polling}, timeout=2.0)
            if not done:
                carried_on += 1
                polling.cancel()  # once more, so the test itself ends
                await asyncio.wait({polling}, timeout=2.0)
    finally:
        await transport.close()
    assert carried_on == 0, f"{carried_on} of {_TRIALS} cancelled polls carried on"
