"""kill -9 an executor holding ≥ 50 tasks: the other node completes them, once each."""

from __future__ import annotations

import time

import pytest

from boson.client import TaskRequest
from tests.reliability.harness import (
    Watch,
    assert_exactly_once,
    counting_client,
    gather_results,
    health,
    record,
    start_pipeline,
    wait_for_nodes,
    wait_until,
)
from tests.support.cluster import ProcessCluster

TASKS = 500
BURN_S = 0.02
VICTIM, SURVIVOR = "node-victim", "node-survivor"


@pytest.mark.broker
@pytest.mark.timeout(150)
async def test_killed_executor_work_completes_on_the_other_node(
    cluster: ProcessCluster,
) -> None:
    # 4 slots and 16 deliveries per slot: up to 64 tasks running or queued per node.
    cluster.extra_env.update(BOSON_PREFETCH_FACTOR="16", BOSON_CREDIT_PER_SLOT="16")
    await start_pipeline(cluster, [VICTIM, SURVIVOR], "--slots", "4")
    client = await counting_client(cluster)
    watch = await Watch.start(cluster, client.client_id, [VICTIM, SURVIVOR])
    try:
        await wait_for_nodes(client, 2)
        started = time.monotonic()
        handles = await client.submit_many(
            [TaskRequest("burn", params={"seconds": BURN_S}) for _ in range(TASKS)]
        )

        async def victim_holds_enough() -> bool:
            # A margin over 50: a few may finish between this look and the kill.
            return int((await health(cluster, VICTIM)).get("held", 0)) >= 56

        await wait_until(victim_holds_enough, timeout=60)
        held_at_kill = int((await health(cluster, VICTIM))["held"])
        done_at_kill = sum(client.shown.values())
        killed_at = time.monotonic()
        cluster.kill(VICTIM)

        async def balancer_drains_victim() -> bool:
            draining = (await health(cluster, "balancer")).get("draining", [])
            return isinstance(draining, list) and VICTIM in draining

        detected_s = await wait_until(balancer_drains_victim, timeout=30)
        results = await gather_results(client, handles, timeout=120)
        all_done_s = time.monotonic() - killed_at
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())

        # The ids the dead node took with it: assigned to it, never reported by it.
        by_victim = {tid for tid, r in results.items() if r.node_id == VICTIM}
        orphans = watch.assigned(VICTIM) - by_victim
        assert len(orphans) >= 50, (len(orphans), held_at_kill)
        assert {results[tid].node_id for tid in orphans} == {SURVIVOR}
        recovered_s = max(client.shown_at[tid] for tid in orphans) - killed_at
        balancer = await health(cluster, "balancer")
        record(
            "executor_killed",
            delivery.as_dict()
            | {
                "kills": 1,
                "held_by_victim_at_kill": held_at_kill,
                "completed_before_kill": done_at_kill,
                "orphans_completed_elsewhere": len(orphans),
                "balancer_recovered": balancer.get("recovered"),
                "result_messages_at_broker": len(watch.results()),
                "detect_s": detected_s,
                "orphans_done_s": recovered_s,
                "all_done_after_kill_s": all_done_s,
                "run_s": time.monotonic() - started,
            },
        )
    finally:
        await watch.close()
        await client.close()
