"""The task record end to end on the embedded broker with SQLite.

Tasks, some failing, run through the five real services in-process; a second
client that submitted nothing then reads every task's state and result by id
through the bus, lists them by filter, and gets typed errors for bad asks.
The CLI reads the same SQLite file directly after an in-process submit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boson.client import TaskRequest
from boson.launcher import EmbeddedCluster
from boson_shared.contract.messages import TERMINAL_STATES
from boson_shared.errors import InvalidQueryError, TaskNotFoundError
from boson_shared.settings import BosonSettings
from tests.support.waiting import wait_for_nodes

REPO = Path(__file__).resolve().parents[2]
HANDLERS = "tests.e2e.record_handlers"
TASKS = 60


async def test_every_task_is_recorded_once_and_readable_by_another_client(
    tmp_path: Path,
) -> None:
    settings = BosonSettings(database_url=f"sqlite:///{tmp_path}/records.sqlite3")  # type: ignore[arg-type]
    cluster = EmbeddedCluster(settings)
    try:
        await cluster.start_control_plane()
        for node in ("n1", "n2"):
            await cluster.start_executor(node, slots=4, handler_modules=(HANDLERS,))
        submitter = await cluster.client()
        # Placed, not pending: the scheduler must know the nodes before the burst.
        await wait_for_nodes(submitter, 2)
        requests = [
            TaskRequest("square", params={"x": k, "fail": k % 7 == 0}) for k in range(TASKS)
        ]
        handles = await submitter.submit_many(requests)
        seen = {h.task_id: await h.result(timeout=60) for h in handles}
        await submitter.close()
        assert await cluster.settle_record()

        reader_client = await cluster.client()
        try:
            async with reader_client.records() as reader:
                for task_id, result in seen.items():
                    record = await reader.get(task_id)
                    assert record.state == result.status
                    terminal = [e for e in record.timeline if e.stage in TERMINAL_STATES]
                    assert len(terminal) == 1
                    assert [e.stage for e in record.timeline][:2] == ["submitted", "placed"]
                    if result.status == "succeeded":
                        assert record.output == result.output
                        assert "started" in [e.stage for e in record.timeline]
                    else:
                        assert record.error is not None
                        assert record.error.error_type == "InvalidTaskInputError"
                failed = await reader.tasks(state="failed", limit=1000)
                assert {r.task_id for r in failed.records} == {
                    t for t, r in seen.items() if r.status == "failed"
                }
                page = await reader.tasks(handler="square", limit=25)
                assert len(page.records) == 25
                assert page.next_cursor is not None
                rest = await reader.tasks(handler="square", limit=1000, cursor=page.next_cursor)
                assert len(rest.records) == TASKS - 25
                assert (await reader.tasks(node_id="nowhere")).records == ()
                with pytest.raises(TaskNotFoundError):
                    await reader.get("no-such-task")
                with pytest.raises(InvalidQueryError):
                    await reader.tasks(cursor="not-a-cursor")
                with pytest.raises(InvalidQueryError):
                    await reader.tasks(limit=0)
                # The record still answers after the bad questions.
                assert (await reader.get(handles[1].task_id)).state == "succeeded"
            assert (await reader_client.get(handles[0].task_id)).state == "failed"
        finally:
            await reader_client.close()
    finally:
        await cluster.stop()


def _boson(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    env["BOSON_DATABASE_URL"] = f"sqlite:///{database}"
    return subprocess.run(
        [sys.executable, "-m", "boson", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )


@pytest.mark.slow
def test_the_cli_reads_what_an_in_process_submit_ran(tmp_path: Path) -> None:
    database = tmp_path / "records.sqlite3"
    submitted = _boson("submit", "noop", "--count", "3", "--json", database=database)
    assert submitted.returncode == 0, submitted.stderr
    task_ids = {json.loads(line)["task_id"] for line in submitted.stdout.splitlines()}

    listed = _boson("tasks", "--json", database=database)
    assert listed.returncode == 0, listed.stderr
    tasks = json.loads(listed.stdout)["tasks"]
    assert {t["task_id"] for t in tasks} == task_ids
    assert {t["state"] for t in tasks} == {"succeeded"}

    one = _boson("task", next(iter(task_ids)), database=database)
    assert one.returncode == 0, one.stderr
    assert "succeeded" in one.stdout

    result = _boson("result", next(iter(task_ids)), "--json", database=database)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "succeeded"

    missing = _boson("task", "no-such-task", database=database)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "boson: TaskNotFoundError: no task 'no-such-task' in the record"
    ]
    bad = _boson("tasks", "--since", "yesterday-ish", database=database)
    assert bad.returncode == 2
    assert bad.stderr.startswith("boson: InvalidQueryError:")
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_the_cli_result_of_a_failed_task_is_its_error(tmp_path: Path) -> None:
    database = tmp_path / "records.sqlite3"
    submitted = _boson("submit", "burn", "--param", "seconds=-1", "--json", database=database)
    assert submitted.returncode == 1, submitted.stderr
    task_id = json.loads(submitted.stdout.splitlines()[0])["task_id"]
    error = f"task {task_id} failed: InvalidTaskInputError: seconds must be in 0..3600"

    as_json = _boson("result", task_id, "--json", database=database)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"task_id": task_id, "state": "failed", "error": error}

    as_text = _boson("result", task_id, database=database)
    assert as_text.returncode == 1
    assert as_text.stdout == ""
    assert as_text.stderr.strip().splitlines() == [f"boson: {error}"]
