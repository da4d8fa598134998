"""The monitor's depth poll asks about a missing queue less and less often.

A passive declare of a missing queue closes the broker channel it was asked
on, so a node heartbeating without a queue would cost a channel at every
poll; found missing, a queue is asked about again after a wait that doubles
up to a cap, and at every poll once it exists.
"""

from __future__ import annotations

import asyncio

import pytest

from boson_services.monitor.app import MonitorService
from boson_services.monitor.queue_poll import MissingQueues
from boson_services.monitor.settings import MonitorSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from tests.support.monitor import heartbeat


def test_a_missing_queue_waits_longer_after_each_miss_up_to_the_cap() -> None:
    missing = MissingQueues(5.0, max_wait_s=30.0)
    assert missing.due("q", 0.0)
    waits = []
    now = 0.0
    for _ in range(5):
        missing.missed("q", now)
        later = now
        while not missing.due("q", later):
            later += 0.5
        waits.append(later - now)
        now = later
    assert waits == [5.0, 10.0, 20.0, 30.0, 30.0]


def test_a_queue_found_again_is_asked_about_at_every_poll() -> None:
    missing = MissingQueues(5.0)
    missing.missed("q", 0.0)
    missing.missed("q", 5.0)
    missing.found("q")
    assert missing.due("q", 5.0)
    missing.missed("q", 6.0)  # missing again: the waits start over
    assert not missing.due("q", 10.9)
    assert missing.due("q", 11.0)


def test_queues_no_longer_polled_are_forgotten() -> None:
    missing = MissingQueues(5.0)
    missing.missed("gone", 0.0)
    missing.missed("kept", 0.0)
    missing.keep_only(["kept", "other"])
    assert len(missing) == 1
    assert "gone" not in missing
    assert missing.due("gone", 0.0)
    assert not missing.due("kept", 0.0)


@pytest.mark.parametrize("interval_s", [0.0, -1.0])
def test_the_waits_must_be_positive(interval_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        MissingQueues(interval_s)


class CountingTransport(MemoryTransport):
    """The in-memory broker, counting the depth look-ups by queue."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.asked: list[str] = []

    async def queue_depth_if_present(self, queue: str) -> int | None:
        self.asked.append(queue)
        return await super().queue_depth_if_present(queue)


async def test_the_poll_skips_a_node_queue_found_missing_until_its_wait_ends() -> None:
    transport = CountingTransport(MemoryBroker())
    monitor = MonitorService(
        MonitorSettings(record=False), transport, EnvelopeCodec(Keyring.ephemeral())
    )
    monitor.missing_queues = MissingQueues(0.2)
    names = monitor.names
    await transport.connect()
    try:
        await transport.declare(names.node("with-queue", 60_000))
        for node in ("with-queue", "without-queue"):
            monitor.handlers.on_heartbeat(heartbeat(node))
        present, absent = names.node_queue("with-queue"), names.node_queue("without-queue")

        await monitor.poll_queues()
        assert transport.asked.count(absent) == 1
        await monitor.poll_queues()
        await monitor.poll_queues()
        # The queue that exists is asked about at every poll, the missing one once.
        assert transport.asked.count(present) == 3
        assert transport.asked.count(absent) == 1
        assert absent in monitor.missing_queues
        assert monitor.metrics.queue_depth.labels(absent)._value.get() == 0

        await asyncio.sleep(0.25)  # its first wait, one poll interval, is over
        await transport.declare(names.node("without-queue", 60_000))
        await monitor.poll_queues()
        await monitor.poll_queues()
        assert transport.asked.count(absent) == 3  # found: every poll again
        assert absent not in monitor.missing_queues
    finally:
        await transport.close()
