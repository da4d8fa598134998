"""``kill -9`` of one RabbitMQ node with a thousand tasks in flight.

Services are spread over the three nodes (each starts at a random one); the
node killed is the client's, which also holds the leader of the client's
reply queue, and at least one service is connected to it too. Every service
connected there fails over within 15 s, the others carry on, and the client
shows every result exactly once.

Before that, a client on the same node submitted 200 tasks and went away
before their results came: they wait in its reply queue, whose leader is
on the node killed. A client reconnecting under its id to a surviving node
gets every one of them exactly once (the reply queue is a quorum queue).
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from boson.client import TaskRequest
from tests.cluster.harness import (
    gather_or_explain,
    leave_results_waiting,
    placement,
    reconnect_times,
    spread_executors,
)
from tests.reliability.harness import (
    CountingClient,
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
WAITING = 200
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
        names = processes.settings().names()
        gone_id, waiting_ids = await leave_results_waiting(processes, victim.url, WAITING)
        queues = await asyncio.to_thread(rabbit.queues)
        for reply_queue in (names.client_queue(client.client_id), names.client_queue(gone_id)):
            queue = queues[reply_queue]
            assert queue["type"] == "quorum", queue
            assert len(queue["members"]) == 3, queue
            assert queue["leader"] == victim.name, queue

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
        again = await CountingClient.connect(settings=processes.settings(), client_id=gone_id)
        assert isinstance(again, CountingClient)
        try:
            async with asyncio.timeout(60):
                waited = await asyncio.gather(*(again.result(t) for t in waiting_ids))
            waiting_delivery = assert_exactly_once(again, waiting_ids)
            assert all(r.status == "succeeded" for r in waited)
        finally:
            await again.close()
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
                "waiting_in_reply_queue_at_kill": WAITING,
                "waiting_results_after_reconnect": waiting_delivery.as_dict(),
                "run_s": time.monotonic() - started,
            },
        )
    finally:
        await client.close()
