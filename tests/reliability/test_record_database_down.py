"""The record's database away for half a minute mid-run: nothing is missing after.

The monitor reaches PostgreSQL through a proxy the test cuts. While it is
cut, tasks keep running and finishing, the monitor keeps publishing cluster
snapshots, and the record events wait in the durable record queue; once the
database is back the monitor resumes and every task's outcome is recorded.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from boson.client import TaskHandle, TaskRequest
from boson.launcher import EmbeddedCluster
from boson_services.monitor.app import MonitorService
from boson_shared.record.store import RecordStore
from boson_shared.settings import BosonSettings
from tests.support.chaos_proxy import in_front_of_database
from tests.support.waiting import wait_until

OUTAGE_S = 30.0
HANDLERS = "tests.e2e.record_handlers"


def requests(start: int, count: int) -> list[TaskRequest]:
    return [
        TaskRequest("square", params={"x": k, "fail": k % 9 == 0})
        for k in range(start, start + count)
    ]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_database_away_for_half_a_minute_loses_nothing(postgres_url: str) -> None:
    proxy, through_proxy = await in_front_of_database(postgres_url)
    settings = BosonSettings(database_url=through_proxy)  # type: ignore[arg-type]
    cluster = EmbeddedCluster(settings)
    try:
        await cluster.start_control_plane()
        await cluster.start_executor("n1", slots=4, handler_modules=(HANDLERS,))
        monitor = next(s for s in cluster.services if isinstance(s, MonitorService))
        assert monitor.record is not None
        client = await cluster.client()
        handles: list[TaskHandle] = list(await client.submit_many(requests(0, 40)))
        for handle in handles:
            await handle.result(timeout=30)

        proxy.cut()
        cut_at = time.monotonic()
        while time.monotonic() - cut_at < OUTAGE_S:
            handles += await client.submit_many(requests(len(handles), 10))
            await asyncio.sleep(1.0)
        # Tasks ran on, the monitor still serves the cluster's view...
        for handle in handles:
            await handle.result(timeout=30)
        snapshot = await client.snapshot(timeout=10)
        assert [n.node_id for n in snapshot.nodes] == ["n1"]
        # ...and its record paused instead of dropping what it could not write.
        assert monitor.record.outage
        assert monitor.health()["record"]["consuming"] is False

        proxy.restore()
        handles += await client.submit_many(requests(len(handles), 40))
        seen = {h.task_id: await h.result(timeout=30) for h in handles}
        await client.close()

        async def caught_up() -> bool:
            assert monitor.record is not None
            if monitor.record.outage or not monitor.record_loops:
                return False  # not resumed yet
            return await cluster.settle_record(timeout=1)

        await wait_until(caught_up, timeout=60)
    finally:
        await cluster.stop()
        await proxy.close()

    store = RecordStore.open(postgres_url)
    try:
        assert await store.count() == len(seen)
        for task_id, result in seen.items():
            record = await store.get(task_id)
            assert record.state == result.status, task_id
            assert [e.stage for e in record.timeline].count(result.status) == 1
            if result.status == "succeeded":
                assert record.output == result.output
    finally:
        await store.close()
