"""A monitor whose database stops answering still stops, and loses no event.

The record's write hangs (the database takes the statement and never
answers); SIGTERM must still end the monitor within its bounds — the drain's
grace, then the group commit's and the store's close bounds — and the event
whose write never ended must be back in the record queue for the next monitor.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr

from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.topology import RK_RECORD_EVENT
from boson_shared.record.group_commit import CLOSE_TIMEOUT_S as COMMIT_CLOSE_S
from boson_shared.record.store import CLOSE_TIMEOUT_S as STORE_CLOSE_S
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.service import start_in_background
from tests.support.chaos_proxy import in_front_of_database
from tests.unit.record.events import lifecycle

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

GRACE_S = 0.5


async def test_a_stalled_database_neither_holds_the_stop_nor_loses_the_event(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, through = await in_front_of_database(postgres_url)
    settings = MonitorSettings(
        namespace="monitor-stop",
        instance_id="m1",
        database_url=SecretStr(through),
        drain_grace_s=GRACE_S,
    )
    broker = MemoryBroker()
    transport = MemoryTransport(broker)
    monitor = MonitorService(settings, transport, EnvelopeCodec(Keyring.ephemeral()))
    running = await start_in_background(monitor)
    try:
        assert monitor.record is not None
        assert monitor.record.ready
        record = monitor.record
        (record_loop,) = (
            loop for loop in monitor.record_loops if loop.spec.queue == monitor.names.record_queue
        )
        route = Route(monitor.names.events_exchange, RK_RECORD_EVENT)
        placed, started, *_ = lifecycle("t1")
        # One write that commits, and the start's retention pass over: the pool
        # then holds open connections, idle, for the next write to take.
        await monitor.publisher.publish(route, placed)
        pool = record.store.engine.pool
        async with asyncio.timeout(10):
            while record.ingested == 0 or pool.checkedout():  # type: ignore[attr-defined]  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # The database stops answering: the next write's statement is sent, never answered.
        proxy.stall()
        await monitor.publisher.publish(route, started)
        async with asyncio.timeout(10):
            while record_loop.in_flight == 0:  # noqa: ASYNC110 - the loop's state
                await asyncio.sleep(0.01)

        running.stop_event.set()
        began = time.monotonic()
        bound = GRACE_S + COMMIT_CLOSE_S + STORE_CLOSE_S + 10
        await asyncio.wait({running.task}, timeout=bound)
        assert running.task.done(), f"the monitor did not stop within {bound:.0f}s"
        running.task.result()
        stopped_s = time.monotonic() - began
        # Not lost: handed back to the queue, for the next monitor to write.
        assert await transport.queue_depth(monitor.names.record_queue) == 1
        assert "abandoning it" in caplog.text
        assert stopped_s < bound
    finally:
        if not running.task.done():
            running.task.cancel()
        await proxy.close()
        await transport.close()
        broker.close()
