"""``kill -9`` of one RabbitMQ node with a thousand tasks in flight.

Services are spread over the three nodes (each starts at a random one); the
node killed is the client's, which also holds the leader of the client's
reply queue, and at least one service is connected to it too. Every service
connected there fails over within 15 s, the others carry on, and the client
shows every result exactly once.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from boson.client import TaskRequest
from tests.cluster.harness import (
    gather_or_explain,
    placement,
    reconnect_times,
    spread_executors,
)
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

TASKS = 1000
BURN_S = 0.005
RECONNECT_LIMIT_S = 15.0
EXECUTOR_ARGS = ("--slots", "4")


@pytest.mark.timeout(300)
async def test_kill_one_node_with_a_thousand_tasks_in_flight(
    rabbit: RabbitCluster, processes: ProcessCluster
) -> None:
    await start_pipeline(processes, ["ck-1", "ck-2", "ck-3"], *EXECUTOR_ARGS)
    client = await counting_client(processes)
    try:
        await wait_for_nodes(client, 3)
        victim = rabbit.node_of(os.getpid())
        assert victim is not None, "the client has no connection to the cluster"
        on_victim = await spread_executors(rabbit, processes, victim, *EXECUTOR_ARGS)
        before = placement(rabbit, processes)
        reply_queue = processes.settings().names().client_queue(client.client_id)
        queue = (await asyncio.to_thread(rabbit.queues))[reply_queue]
        assert queue["type"] == "quorum"
        assert len(queue["members"]) == 3, queue

        started = time.monotonic()
        handles = await client.submit_many(
            [TaskRequest("burn", params={"seconds": BURN_S}) for _ in range(TASKS)]
        )
        await wait_until(lambda: sum(client.shown.values()) >= 30, timeout=120)
        done_at_kill = sum(client.shown.values())
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill)

        reconnect_s = await reconnect_times(
            rabbit, processes, killed_at, processes.processes, timeout=RECONNECT_LIMIT_S + 10
        )
        results = await gather_or_explain(rabbit, processes, client, handles, timeout=120)
        all_done_s = time.monotonic() - killed_at
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        assert max(reconnect_s[name] for name in on_victim) <= RECONNECT_LIMIT_S, reconnect_s
        record(
            "cluster_node_killed",
            delivery.as_dict()
            | {
                "killed_node": victim.name,
                "services_on_killed_node": on_victim,
                "placement_before": before,
                "in_flight_at_kill": TASKS - done_at_kill,
                "reconnect_s": reconnect_s,
                "slowest_failover_s": max(reconnect_s[name] for name in on_victim),
                "all_done_after_kill_s": all_done_s,
                "run_s": time.monotonic() - started,
            },
        )
    finally:
        await client.close()
