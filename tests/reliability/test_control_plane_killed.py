"""kill -9 the active balancer, then the scheduler, mid-stream: nothing lost or doubled.

Two balancers share the placed queue (single active consumer): the standby
takes over by itself, before anything is restarted. The killed processes are
then restarted, as an orchestrator would.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from boson.client import TaskHandle, TaskRequest
from tests.reliability.harness import (
    CountingClient,
    assert_exactly_once,
    gather_results,
    health,
    record,
    running_pipeline,
    wait_until,
)
from tests.support.cluster import ProcessCluster

BATCHES = 40
BATCH = 15
INTERVAL_S = 0.25


async def stream(client: CountingClient, handles: list[TaskHandle]) -> None:
    """Submit BATCHES × BATCH small tasks, one batch every INTERVAL_S."""
    for number in range(BATCHES):
        requests = [
            TaskRequest("noop", params={"echo": number * BATCH + i})
            if i % 2
            else TaskRequest("burn", params={"seconds": 0.005})
            for i in range(BATCH)
        ]
        handles.extend(await client.submit_many(requests))
        await asyncio.sleep(INTERVAL_S)


async def dispatched(cluster: ProcessCluster, name: str) -> int:
    return int((await health(cluster, name)).get("dispatched", 0))


@pytest.mark.broker
@pytest.mark.timeout(150)
async def test_balancer_and_scheduler_killed_mid_stream(cluster: ProcessCluster) -> None:
    handles: list[TaskHandle] = []
    async with running_pipeline(cluster, ["cp-1", "cp-2"], "--slots", "4", balancers=2) as client:
        started = time.monotonic()
        producer = asyncio.create_task(stream(client, handles))
        await wait_until(lambda: len(handles) >= BATCHES * BATCH // 4, timeout=30)

        # The active balancer is the one dispatching; the other stands by.
        counts = {name: await dispatched(cluster, name) for name in ("balancer-1", "balancer-2")}
        active = max(counts, key=lambda name: counts[name])
        standby = "balancer-2" if active == "balancer-1" else "balancer-1"
        assert counts[active] > 0, counts
        assert counts[standby] == 0, counts
        cluster.kill(active)
        killed_balancer_at = time.monotonic()

        async def standby_dispatches() -> bool:
            return await dispatched(cluster, standby) > 0

        takeover_s = await wait_until(standby_dispatches, timeout=30)
        cluster.start("balancer", name=active)  # back, as the new standby
        await cluster.wait_healthy(active)

        await wait_until(lambda: len(handles) >= BATCHES * BATCH * 2 // 3, timeout=30)
        placed_before = int((await health(cluster, "scheduler")).get("placed", 0))
        cluster.kill("scheduler")
        killed_scheduler_at = time.monotonic()
        cluster.start("scheduler")
        await cluster.wait_healthy("scheduler")

        async def scheduler_places() -> bool:
            return int((await health(cluster, "scheduler")).get("placed", 0)) > 0

        await wait_until(scheduler_places, timeout=30)
        scheduler_back_s = time.monotonic() - killed_scheduler_at

        await producer
        results = await gather_results(client, handles, timeout=90)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        record(
            "control_plane_killed",
            delivery.as_dict()
            | {
                "kills": 2,
                "balancer_dispatched_before_kill": counts[active],
                "standby_takeover_s": takeover_s,
                "standby_dispatched": await dispatched(cluster, standby),
                "scheduler_placed_before_kill": placed_before,
                "scheduler_placing_again_s": scheduler_back_s,
                "balancer_killed_after_s": killed_balancer_at - started,
                "run_s": time.monotonic() - started,
            },
        )
