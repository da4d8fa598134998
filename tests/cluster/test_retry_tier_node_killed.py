"""The node leading a retry tier dies while tasks wait out their delay in it.

Every task asks for a retry on its first attempt, so each waits in the
namespace's delay tier (a quorum queue, dead-lettering at least once) before
its second. With all of them waiting there, the node leading the tier is
killed: the tier elects a leader among the survivors, the delay runs out
there, and every task comes back to its node queue and completes, once.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from boson.client import TaskRequest
from boson_shared.contract.messages import TaskRetrying
from tests.cluster.harness import gather_or_explain
from tests.reliability.harness import (
    CountingClient,
    assert_exactly_once,
    record,
    start_pipeline,
    wait_for_nodes,
    wait_until,
)
from tests.support.cluster import ProcessCluster
from tests.support.rabbit_cluster import RabbitCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TASKS = 40
DELAY_MS = 20_000
"""Long enough to see every task in the tier and kill its leader before it runs out
(each ``rabbitmqctl`` look-up takes seconds on a loaded machine)."""
HANDLERS = "tests.reliability.handlers"


@pytest.mark.timeout(240)
async def test_tasks_in_their_retry_delay_outlive_the_tier_leader(
    rabbit: RabbitCluster, processes: ProcessCluster
) -> None:
    processes.extra_env["BOSON_RETRY_DELAYS_MS"] = f"[{DELAY_MS}]"
    # A task waiting out its delay still holds its slot: room for all of them.
    await start_pipeline(
        processes, ["rt-1", "rt-2"], "--slots", str(TASKS), "--handler-module", HANDLERS
    )
    settings = processes.settings(retry_delays_ms=(DELAY_MS,))
    tier = settings.names().retry_tier(DELAY_MS)
    client = await CountingClient.connect(settings=settings)
    assert isinstance(client, CountingClient)
    retrying: set[str] = set()
    first_retry_at: list[float] = []

    def on_retrying(news: TaskRetrying) -> None:
        # The news goes out before the task enters the tier: no task can
        # leave the tier before the first news plus the delay.
        first_retry_at[:1] = first_retry_at[:1] or [time.monotonic()]
        retrying.add(news.task_id)

    client.on_retrying = on_retrying
    try:
        await wait_for_nodes(client, 2)
        # The services declared the tier: its leader is where the tasks will wait.
        row = (await asyncio.to_thread(rabbit.queues))[tier]
        assert row["type"] == "quorum", row
        assert len(row["members"]) == 3, row
        victim = next(node for node in rabbit.nodes if node.name == row["leader"])
        handles = await client.submit_many(
            [TaskRequest("fail-first", task_id=f"tier-{i:03d}") for i in range(TASKS)]
        )
        try:
            await wait_until(lambda: len(retrying) == TASKS, timeout=DELAY_MS / 2000)
        except TimeoutError:
            raise AssertionError(f"{len(retrying)} retrying, shown {dict(client.shown)}") from None

        async def all_in_tier() -> bool:
            row = (await asyncio.to_thread(rabbit.queues)).get(tier, {})
            return int(row.get("messages") or 0) == TASKS

        await wait_until(all_in_tier, timeout=DELAY_MS / 1000, step=0.3)
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill)
        assert not client.shown, "a task came back before its delay ran out"
        left_s = first_retry_at[0] + DELAY_MS / 1000 - killed_at
        assert left_s > 0, f"the kill came {-left_s:.1f} s after the first task could leave"

        results = await gather_or_explain(rabbit, processes, client, handles, timeout=120)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" and r.attempts == 2 for r in results.values())
        new_leader = (await asyncio.to_thread(rabbit.queues))[tier]["leader"]
        assert new_leader != victim.name
        record(
            "cluster_retry_tier_leader_killed",
            delivery.as_dict()
            | {
                "killed_node": victim.name,
                "waiting_in_tier_at_kill": TASKS,
                "delay_left_at_kill_s": round(left_s, 2),
                "retry_delay_s": DELAY_MS / 1000,
                "tier_leader_after": new_leader,
                "all_done_after_kill_s": time.monotonic() - killed_at,
            },
        )
    finally:
        await client.close()
