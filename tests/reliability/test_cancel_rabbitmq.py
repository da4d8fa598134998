"""The cancel flow on RabbitMQ, every service a process of its own.

See :mod:`tests.support.cancel_flow`: 1,000 tasks, 100 cancelled at random
moments, queued and running; each record ends in the one terminal state its
submitter saw; a task cancelled while queued never starts; no process of a
cancelled process-mode task survives. Then a second client, a process of its
own (the CLI), reads back a task's progress and logs through the bus, and
cancels with ``boson cancel``: a finished task, an unknown id.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from boson_shared.errors import TaskNotFoundError
from tests.reliability.harness import (
    assert_exactly_once,
    record,
    running_pipeline,
    wait_until,
)
from tests.support.cancel_flow import alive, cancel_running_processes, check, execute, warm_up
from tests.support.cluster import ROOT, ProcessCluster

HANDLERS = "tests.e2e.steering_handlers"
NODES = ["node-a", "node-b"]


async def cli(cluster: ProcessCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``boson ARGS`` as a process of its own, against the cluster."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "boson", *args],
        cwd=ROOT,
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_hundred_cancels_among_a_thousand_tasks_on_rabbitmq(
    cluster: ProcessCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_pipeline(
        cluster, NODES, "--slots", "4", "--handler-module", HANDLERS
    ) as client:
        warm = await warm_up(client)
        run = await execute(client, tmp_path_factory.mktemp("flow"), seed=11, timeout=120)
        delivery = assert_exactly_once(client, [*warm, *run.results])
        killed = await cancel_running_processes(client, run.pids_dir)

        # Progress and logs of a process-mode handler that reports both.
        chatty = await client.submit("chatty_process", params={"steps": 4, "pause": 0.3})
        reports = [(r.fraction, r.message) async for r in chatty.progress()]
        assert (await chatty.result(timeout=60)).status == "succeeded"
        assert reports[-1] == (1.0, "step 4 of 4")
        assert len(reports) <= 4

        async def caught_up() -> bool:
            # The record's queue is taken in order: the last task recorded, all are.
            try:
                async with client.records() as reader:
                    return (await reader.get(chatty.task_id)).state == "succeeded"
            except TaskNotFoundError:
                return False

        await wait_until(caught_up, timeout=30)
        async with client.records() as reader:
            figures = await check(run, reader)
        assert figures["cancelled_while_queued"] >= 10, figures
        assert figures["process_pids_checked"] >= len(killed) == 6, figures
        assert not any(alive(pid) for pid in killed)
        assert figures["cancelled_while_running"] >= 3, figures
        record("cancel_rabbitmq", delivery.as_dict() | figures | {"took_s": round(run.took_s, 1)})

        # A second client process reads them back over the bus.
        logs = await cli(cluster, "logs", chatty.task_id, "--json")
        assert logs.returncode == 0, logs.stderr
        body = json.loads(logs.stdout)
        assert (body["progress"], body["progress_message"]) == (1.0, "step 4 of 4")
        assert "printed step 4" in body["logs"]
        assert "logged step 4" in body["logs"]
        assert "keys are [redacted]" in body["logs"]
        assert cluster.keys.split(":", 1)[1] not in body["logs"]
        task = await cli(cluster, "task", chatty.task_id, "--json")
        assert json.loads(task.stdout)["progress"] == 1.0

        # boson cancel: a finished task says so; an unknown id is an error.
        cancelled = next(t for t, r in run.results.items() if r.status == "cancelled")
        answer = await cli(cluster, "cancel", chatty.task_id, cancelled, "no-such-task", "--json")
        assert answer.returncode == 1
        assert json.loads(answer.stdout) == {
            chatty.task_id: "already-finished",
            cancelled: "cancelled",
            "no-such-task": "unknown",
        }
        assert "unknown task 'no-such-task'" in answer.stderr
