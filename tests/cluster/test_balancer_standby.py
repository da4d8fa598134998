"""The node holding the placed queue's leader dies: the standby balancer takes over.

The placed queue has a single active consumer. The first balancer declares
it, so its leader is on that balancer's node (RabbitMQ places a new quorum
queue's leader on the declaring connection's node), and it is the active
consumer; the standby is connected to another node. Killing the leader's
node takes the active balancer's connection with it: the queue elects a new
leader and hands the consumer role to the standby, which dispatches the rest.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.cluster.feeder import burn_tasks, submit_retrying
from tests.cluster.harness import gather_or_explain, placement
from tests.reliability.harness import (
    assert_exactly_once,
    counting_client,
    health,
    record,
    wait_for_nodes,
    wait_until,
)
from tests.support.cluster import ProcessCluster
from tests.support.rabbit_cluster import RabbitCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TASKS_BEFORE = 300
TASKS_AFTER = 200
ACTIVE, STANDBY = "balancer-1", "balancer-2"


async def _dispatched(processes: ProcessCluster, name: str) -> int:
    return int((await health(processes, name)).get("dispatched", 0))


@pytest.mark.timeout(300)
async def test_standby_balancer_takes_over_when_the_leader_node_dies(
    rabbit: RabbitCluster, processes: ProcessCluster
) -> None:
    processes.start("balancer", name=ACTIVE)
    await processes.wait_healthy(ACTIVE)
    active_node = rabbit.node_of(processes.processes[ACTIVE].process.pid)
    assert active_node is not None
    tries = 8
    for _ in range(tries):
        processes.start("balancer", name=STANDBY)
        await processes.wait_healthy(STANDBY)
        if rabbit.node_of(processes.processes[STANDBY].process.pid) is not active_node:
            break
        processes.kill(STANDBY)
        del processes.processes[STANDBY]
    else:
        pytest.fail(f"the standby kept landing on {active_node.name} ({tries} tries)")
    processes.start("monitor")
    processes.start("scheduler")
    for name in ("sb-1", "sb-2", "sb-3"):
        processes.start("executor", "--node-id", name, "--slots", "4", name=name)
    await processes.wait_healthy()
    placed_queue = processes.settings().names().placed_queue
    leader = (await asyncio.to_thread(rabbit.queues))[placed_queue]["leader"]
    assert leader == active_node.name, (leader, active_node.name)

    client = await counting_client(processes)
    try:
        await wait_for_nodes(client, 3)
        before = placement(rabbit, processes)
        handles = await client.submit_many(burn_tasks(TASKS_BEFORE))
        await wait_until(lambda: sum(client.shown.values()) >= 30, timeout=60)
        assert await _dispatched(processes, ACTIVE) > 0
        assert await _dispatched(processes, STANDBY) == 0
        killed_at = time.monotonic()
        await asyncio.to_thread(active_node.kill)

        async def standby_dispatches() -> bool:
            return await _dispatched(processes, STANDBY) > 0

        handles += await submit_retrying(client, burn_tasks(TASKS_AFTER))
        takeover_s = await wait_until(standby_dispatches, timeout=60, step=0.1)
        results = await gather_or_explain(rabbit, processes, client, handles, timeout=120)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        new_leader = (await asyncio.to_thread(rabbit.queues))[placed_queue]["leader"]
        record(
            "cluster_balancer_standby",
            delivery.as_dict()
            | {
                "killed_node": active_node.name,
                "placed_queue_leader_before": leader,
                "placed_queue_leader_after": new_leader,
                "placement_before": before,
                "standby_dispatching_after_kill_s": takeover_s,
                "dispatched_by_standby": await _dispatched(processes, STANDBY),
                "all_done_after_kill_s": time.monotonic() - killed_at,
            },
        )
    finally:
        await client.close()
