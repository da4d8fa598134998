"""A rolling restart of all three RabbitMQ nodes, one at a time, under load.

Each node is stopped gracefully (``rabbitmqctl stop``), started again, and
the next one waits until every queue of the namespace has all three members
online again (the node is no longer quorum-critical). Submissions never stop;
the client shows every task exactly once.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.cluster.feeder import Feeder
from tests.cluster.harness import gather_or_explain, placement
from tests.reliability.harness import (
    assert_exactly_once,
    counting_client,
    record,
    start_pipeline,
    wait_for_nodes,
    wait_until,
)
from tests.support.cluster import ProcessCluster
from tests.support.rabbit_cluster import RabbitCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _all_members_online(rabbit: RabbitCluster, namespace: str) -> bool:
    """Every quorum queue of the namespace has its three members online.

    Classic queues (retry tiers, exclusive subscriber queues) have no
    members to wait for.
    """
    queues = rabbit.queues()
    mine = [
        row
        for name, row in queues.items()
        if name.startswith(namespace) and row.get("type") == "quorum"
    ]
    return bool(mine) and all(len(row.get("online") or []) == 3 for row in mine)


@pytest.mark.timeout(420)
async def test_rolling_restart_under_load(rabbit: RabbitCluster, processes: ProcessCluster) -> None:
    await start_pipeline(processes, ["rr-1", "rr-2", "rr-3"], "--slots", "4")
    client = await counting_client(processes)
    feeder = Feeder(client, batch=5, every_s=0.2)
    try:
        await wait_for_nodes(client, 3)
        before = placement(rabbit, processes)
        started = time.monotonic()
        feeder.start()
        await wait_until(lambda: sum(client.shown.values()) >= 20, timeout=60)
        restarts: dict[str, dict[str, float]] = {}
        for node in rabbit.nodes:
            stop_at = time.monotonic()
            await asyncio.to_thread(rabbit.stop_node, node)
            stopped_s = time.monotonic() - stop_at
            await asyncio.to_thread(rabbit.restart, node)
            back_s = time.monotonic() - stop_at

            async def caught_up() -> bool:
                return await asyncio.to_thread(_all_members_online, rabbit, processes.namespace)

            await wait_until(caught_up, timeout=180, step=2.0)
            restarts[node.name] = {
                "stop_s": round(stopped_s, 2),
                "down_until_running_s": round(back_s, 2),
                "until_quorum_restored_s": round(time.monotonic() - stop_at, 2),
            }
        handles = await feeder.stop()
        for name, proc in processes.processes.items():
            assert proc.process.poll() is None, f"{name} exited: {processes.log(name)[-2000:]}"
        results = await gather_or_explain(rabbit, processes, client, handles, timeout=120)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        record(
            "cluster_rolling_restart",
            delivery.as_dict()
            | {
                "restarts": restarts,
                "resent_batches": feeder.resends,
                "placement_before": before,
                "placement_after": placement(rabbit, processes),
                "run_s": time.monotonic() - started,
            },
        )
    finally:
        await feeder.stop()
        await client.close()
