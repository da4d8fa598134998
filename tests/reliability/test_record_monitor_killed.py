"""The task record on RabbitMQ and PostgreSQL, with the monitor ``kill -9``'d midway.

Tasks stream in, some failing; two monitors share the record queue, and one
is killed in the middle of the stream and restarted. Its unacknowledged record events go back to the
durable record queue and are written when it returns. At the end every
task's record holds exactly one outcome, the one its submitter saw, and a
second client process, which submitted nothing, reads each task's state and
result by id through the bus.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from boson.client import TaskHandle, TaskRequest
from tests.reliability.harness import (
    CountingClient,
    assert_exactly_once,
    counting_client,
    gather_results,
    start_pipeline,
    wait_for_nodes,
    wait_until,
)
from tests.support.cluster import ROOT, ProcessCluster
from tests.support.waiting import health

BATCH = 10
BATCHES = int(os.environ.get("BOSON_TEST_RECORD_TASKS", "200")) // BATCH
"""200 tasks in CI; ``BOSON_TEST_RECORD_TASKS=1000`` for the full-size run."""
INTERVAL_S = 0.2
HANDLERS = "tests.e2e.record_handlers"


async def stream(client: CountingClient, handles: list[TaskHandle]) -> None:
    for number in range(BATCHES):
        requests = [
            TaskRequest("square", params={"x": number * BATCH + i, "fail": (number + i) % 7 == 0})
            for i in range(BATCH)
        ]
        handles.extend(await client.submit_many(requests))
        await asyncio.sleep(INTERVAL_S)


def read_in_another_process(cluster: ProcessCluster, task_ids: list[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.read_records"],
        input="\n".join(task_ids),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=cluster.env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return {row["task_id"]: row for row in rows}


def boson_cli(cluster: ProcessCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boson", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=cluster.env(),
        check=False,
    )


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_monitor_killed_mid_stream_loses_nothing_from_the_record(
    cluster: ProcessCluster, postgres_url: str
) -> None:
    cluster.extra_env["BOSON_DATABASE_URL"] = postgres_url
    # Two monitors share the record queue as competing consumers.
    cluster.start("monitor", name="monitor-2")
    await start_pipeline(cluster, ["n1", "n2"], "--slots", "4", "--handler-module", HANDLERS)
    client = await counting_client(cluster)
    handles: list[TaskHandle] = []
    try:
        await wait_for_nodes(client, 2)
        producer = asyncio.create_task(stream(client, handles))
        await wait_until(lambda: len(handles) >= BATCHES * BATCH // 2, timeout=60)
        cluster.kill("monitor")
        await asyncio.sleep(1.0)
        cluster.start("monitor")
        await cluster.wait_healthy("monitor")
        await producer
        seen = await gather_results(client, handles, timeout=90)
        assert_exactly_once(client, seen)
        record = (await health(cluster, "monitor-2"))["record"]
        assert isinstance(record, dict)
        assert record["ingested"] > 0  # the survivor took its share
    finally:
        await client.close()

    records = read_in_another_process(cluster, list(seen))
    assert set(records) == set(seen)
    wrong = {
        task_id: (records[task_id]["state"], result.status)
        for task_id, result in seen.items()
        if records[task_id]["state"] != result.status
    }
    assert not wrong, list(wrong.items())[:5]
    for task_id, result in seen.items():
        row = records[task_id]
        assert row["terminal_events"] == 1, row
        assert row["stages"][0] == "submitted", row
        if result.status == "succeeded":
            assert row["output"] == result.output
        else:
            assert row["error_type"] == "InvalidTaskInputError"
    assert any(r.status == "failed" for r in seen.values())

    # The CLI asks the same record over the bus.
    failed_ids = {t for t, r in seen.items() if r.status == "failed"}
    listed = boson_cli(cluster, "tasks", "--state", "failed", "--limit", "1000", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {t["task_id"] for t in json.loads(listed.stdout)["tasks"]} == failed_ids
    shown = boson_cli(cluster, "result", next(iter(set(seen) - failed_ids)), "--json")
    assert shown.returncode == 0, shown.stderr
    missing = boson_cli(cluster, "task", "no-such-task")
    assert missing.returncode == 2
    assert "TaskNotFoundError" in missing.stderr

    # And in the database itself: one row per task, one outcome per task.
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        assert await connection.fetchval("SELECT count(*) FROM boson_tasks") == len(seen)
        doubled = await connection.fetchval(
            "SELECT count(*) FROM (SELECT task_id FROM boson_task_events "
            "WHERE stage IN ('succeeded', 'failed') GROUP BY task_id HAVING count(*) > 1) d"
        )
        assert doubled == 0
    finally:
        await connection.close()
