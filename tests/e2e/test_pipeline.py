"""The user's path end to end: 1,000 mixed tasks, every result once and right.

Three ways in: the five services as separate OS processes on the real
RabbitMQ, ``boson.embedded()`` in-process, and ``boson submit`` with no
broker configured.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from boson import embedded
from boson.client import Client
from boson.commands.run import SERVICES
from boson_shared.contract.messages import TaskResult
from tests.e2e.workload import check_results, mixed_tasks
from tests.support.cluster import ROOT, ProcessCluster
from tests.support.waiting import wait_for_nodes

POISON_MODULE = "tests.e2e.poison"


async def run_workload(client: Client, count: int) -> None:
    expected = mixed_tasks(count)
    handles = await client.submit_many([item.request for item in expected])
    poison = await client.submit("poison", max_retries=2)
    results = await asyncio.gather(*(handle.result(timeout=180) for handle in handles))
    check_results(expected, list(results))
    failed = await poison.result(timeout=60)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "always fails" in failed.error.message
    assert failed.attempts == 3  # the first try and two retries
    # Exactly once: one result per task id, whatever the broker redelivered.
    assert client.pending() == 0
    ids = {handle.task_id for handle in handles}
    assert len(ids) == count
    assert all(isinstance(client.take_result(task_id), TaskResult) for task_id in ids)


@pytest.mark.broker
@pytest.mark.timeout(300)
async def test_thousand_mixed_tasks_through_service_processes(
    amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    cluster = ProcessCluster(amqp_url, namespace, tmp_path)
    try:
        for service in SERVICES:
            if service != "executor":
                cluster.start(service)
        for node in ("e2e-1", "e2e-2"):
            cluster.start(
                "executor", "--node-id", node, "--handler-module", POISON_MODULE, name=node
            )
        await cluster.wait_healthy()
        client = await Client.connect(settings=cluster.settings())
        try:
            await wait_for_nodes(client, 2)
            await run_workload(client, 1000)
        finally:
            await client.close()
        # With no failures injected, each task ran exactly once across the nodes.
        executed = 0
        for name in ("e2e-1", "e2e-2"):
            body = cluster.processes[name].health()
            assert body is not None, name
            results = body["results"]
            assert isinstance(results, dict)
            executed += int(results["succeeded"])
        assert executed == 1000
    finally:
        cluster.stop_all()
    for name in cluster.processes:
        assert cluster.processes[name].process.returncode == 0, cluster.log(name)[-2000:]


@pytest.mark.timeout(180)
async def test_the_same_flow_embedded() -> None:
    async with embedded(executors=2, handler_modules=[POISON_MODULE]) as client:
        await run_workload(client, 300)


@pytest.mark.timeout(120)
def test_boson_submit_without_a_broker(tmp_path: Path) -> None:
    array = np.random.default_rng(3).normal(size=(100, 2))
    path = tmp_path / "input.csv"
    np.savetxt(path, array, delimiter=",", header="x,y", comments="")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "boson",
            "submit",
            "stats",
            "--input",
            str(path),
            "--wait",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=100,
        check=True,
    )
    (line,) = completed.stdout.decode().strip().splitlines()
    result = json.loads(line)
    assert result["status"] == "succeeded"
    assert result["output"]["columns"]["y"]["mean"] == pytest.approx(array[:, 1].mean())


@pytest.mark.timeout(60)
def test_boson_submit_reports_a_failed_task_with_exit_code_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    completed = subprocess.run(
        [sys.executable, "-m", "boson", "submit", "stats", "--param", 'values="oops"', "--wait"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=50,
        check=False,
    )
    assert completed.returncode == 1
    assert b"InvalidInputFromWorkerError" in completed.stdout or b"failed" in completed.stdout
