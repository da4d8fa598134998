"""SIGTERM to an executor with tasks running: it finishes or hands back, then exits.

The stopped executor's drain grace (GRACE_S) is longer than a task but
shorter than two, and each node holds three tasks per slot, so both ways out
are exercised: the running tasks finish, those still waiting for (or in) a
slot when the grace runs out are handed back to the broker and completed by
the other node. The tasks sleep rather than burn CPU, so the timing does not
depend on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from boson.client import TaskRequest
from tests.reliability.harness import (
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

HANDLERS = "tests.reliability.handlers"
TASKS = 16
TASK_S = 2.0
GRACE_S = 3.0
EXIT_MARGIN_S = 1.5
"""Past the grace: killing the workers of what is left, closing the connection."""
STOPPED, OTHER = "gs-stopped", "gs-other"


@pytest.mark.broker
@pytest.mark.timeout(120)
async def test_sigterm_drains_an_executor_without_losing_tasks(cluster: ProcessCluster) -> None:
    cluster.extra_env.update(BOSON_PREFETCH_FACTOR="3", BOSON_CREDIT_PER_SLOT="3")
    await start_pipeline(cluster, [OTHER], "--handler-module", HANDLERS)
    cluster.extra_env["BOSON_DRAIN_GRACE_S"] = str(GRACE_S)
    cluster.start("executor", "--node-id", STOPPED, "--handler-module", HANDLERS, name=STOPPED)
    await cluster.wait_healthy(STOPPED)
    client = await counting_client(cluster)
    try:
        await wait_for_nodes(client, 2)
        handles = await client.submit_many(
            [TaskRequest("sleep", params={"seconds": TASK_S}) for _ in range(TASKS)]
        )

        async def stopped_is_busy() -> bool:
            body = await health(cluster, STOPPED)
            return int(body.get("running", 0)) >= 2 and int(body.get("held", 0)) >= 5

        await wait_until(stopped_is_busy, timeout=30)
        before = await health(cluster, STOPPED)
        term_at = time.monotonic()
        exit_code = await asyncio.to_thread(cluster.terminate, STOPPED, GRACE_S + 20)
        exit_s = time.monotonic() - term_at
        assert exit_code == 0, cluster.log(STOPPED)[-2000:]
        assert exit_s <= GRACE_S + EXIT_MARGIN_S, exit_s

        results = await gather_results(client, handles, timeout=90)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        finished_in_drain = sum(
            1
            for tid, r in results.items()
            if r.node_id == STOPPED and client.shown_at[tid] >= term_at
        )
        assert finished_in_drain >= 1
        handed_back = int(before["held"]) - finished_in_drain
        assert handed_back >= 1
        record(
            "graceful_stop",
            delivery.as_dict()
            | {
                "sigterms": 1,
                "running_at_sigterm": before.get("running"),
                "held_at_sigterm": before.get("held"),
                "finished_during_drain": finished_in_drain,
                "handed_back": handed_back,
                "grace_s": GRACE_S,
                "exit_after_sigterm_s": exit_s,
                "all_done_after_sigterm_s": time.monotonic() - term_at,
            },
        )
    finally:
        await client.close()
