"""SIGTERM to an executor with tasks running: it finishes or hands back, then exits.

The stopped executor's drain grace (GRACE_S) is longer than a task but
shorter than two, and each node holds three tasks per slot, so both ways out
are exercised: the running tasks finish, those still waiting for (or in) a
slot when the grace runs out are handed back to the broker and completed by
the other node. The tasks sleep rather than burn CPU, so the timing does not
depend on how busy the machine is.

What the node held at SIGTERM is counted exactly, not guessed from a look
taken a moment before: every task sleeps, then waits at a gate (a file) the
test opens only once the executor says it is draining. Until then no task
ends, so no credit comes back and nothing new arrives: the node's full
window (SLOTS × CREDIT_PER_SLOT, all of it seen in its /health) is what it
holds when the drain begins, and every result it sends came from the drain.
At most two tasks per slot can end within the grace (the one running when
the gate opens, then the next, a whole task long), so a third waits in each
slot's line whatever the timing, and is handed back.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

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
SLOTS = 2
CREDIT_PER_SLOT = 3
WINDOW = SLOTS * CREDIT_PER_SLOT
"""What a node holds with its credit used up (the balancer sends no more)."""
EXIT_MARGIN_S = 1.5
"""Past the grace: killing the workers of what is left, closing the connection."""
STOPPED, OTHER = "gs-stopped", "gs-other"


@pytest.mark.broker
@pytest.mark.timeout(120)
async def test_sigterm_drains_an_executor_without_losing_tasks(cluster: ProcessCluster) -> None:
    cluster.extra_env.update(
        BOSON_SLOTS=str(SLOTS),
        BOSON_PREFETCH_FACTOR=str(CREDIT_PER_SLOT),
        BOSON_CREDIT_PER_SLOT=str(CREDIT_PER_SLOT),
    )
    await start_pipeline(cluster, [OTHER], "--handler-module", HANDLERS)
    # Its own log says when it drains (an INFO line).
    cluster.extra_env.update(BOSON_DRAIN_GRACE_S=str(GRACE_S), BOSON_LOG_LEVEL="INFO")
    cluster.start("executor", "--node-id", STOPPED, "--handler-module", HANDLERS, name=STOPPED)
    await cluster.wait_healthy(STOPPED)
    gate = cluster.log_dir / "gate"
    client = await counting_client(cluster)
    try:
        await wait_for_nodes(client, 2)
        handles = await client.submit_many(
            [
                TaskRequest("sleep", params={"seconds": TASK_S, "gate": str(gate)})
                for _ in range(TASKS)
            ]
        )
        before: dict[str, Any] = {}

        async def stopped_is_full() -> bool:
            nonlocal before
            before = await health(cluster, STOPPED)
            return before.get("running") == SLOTS and before.get("held") == WINDOW

        # Behind the closed gate nothing ends: this is what it holds at SIGTERM.
        await wait_until(stopped_is_full, timeout=30)
        term_at = time.monotonic()
        cluster.processes[STOPPED].process.send_signal(signal.SIGTERM)
        await wait_until(lambda: "executor draining" in cluster.log(STOPPED), timeout=GRACE_S)
        gate.touch()
        exit_code = await asyncio.to_thread(cluster.processes[STOPPED].process.wait, GRACE_S + 20)
        exit_s = time.monotonic() - term_at
        assert exit_code == 0, cluster.log(STOPPED)[-2000:]
        assert exit_s <= GRACE_S + EXIT_MARGIN_S, exit_s

        results = await gather_results(client, handles, timeout=90)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        # No task could end before the gate opened, after the drain began.
        finished_in_drain = sum(1 for r in results.values() if r.node_id == STOPPED)
        assert finished_in_drain >= 1
        handed_back = WINDOW - finished_in_drain
        assert handed_back >= 1
        record(
            "graceful_stop",
            delivery.as_dict()
            | {
                "sigterms": 1,
                "running_at_sigterm": before["running"],
                "held_at_sigterm": before["held"],
                "finished_during_drain": finished_in_drain,
                "handed_back": handed_back,
                "grace_s": GRACE_S,
                "exit_after_sigterm_s": exit_s,
                "all_done_after_sigterm_s": time.monotonic() - term_at,
            },
        )
    finally:
        gate.touch()  # whatever happened, no task waits at the gate for good
        await client.close()
