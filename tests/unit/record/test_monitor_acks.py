"""Which of the monitor's queues are consumed with acks, and which without.

Its own queue (heartbeats, backlog and tenants reports, each superseded by
the next) is exclusive to its connection and consumed without acks; the
record's durable quorum queue and its queries keep theirs.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_only_the_own_exclusive_queue_goes_without_acks(database_url: str) -> None:
    codec = EnvelopeCodec.from_settings(MonitorSettings(), keyring=Keyring.ephemeral())
    monitor = MonitorService(
        MonitorSettings(database_url=SecretStr(database_url)),
        MemoryTransport(MemoryBroker()),
        codec,
    )
    assert monitor.record is not None
    try:
        (own,) = monitor.consumers()  # the record's consumers start once its database answers
        assert own.queue == monitor.queue
        assert own.no_ack
        (own_queue,) = (q for q in monitor.topology().queues if q.name == monitor.queue)
        assert own_queue.exclusive  # gone with its connection: an ack would keep nothing
        record, queries = monitor.record_consumers(monitor.record)
        assert record.queue == monitor.names.record_queue
        assert queries.queue == monitor.names.record_queries_queue
        assert not record.no_ack
        assert not queries.no_ack
        (record_queue,) = (q for q in monitor.topology().queues if q.name == record.queue)
        assert record_queue.queue_type == "quorum"
    finally:
        await monitor.record.store.close()
