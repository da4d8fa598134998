"""The cancel flow on the embedded broker, with the record in a SQLite file.

See :mod:`tests.support.cancel_flow`: 1,000 tasks, 100 cancelled at random
moments, queued and running; each record ends in the one terminal state its
submitter saw; a task cancelled while queued never starts; no process of a
cancelled process-mode task survives. The CLI then reads a task's progress
and logs from the same file, in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boson.launcher import EmbeddedCluster
from boson_shared.settings import BosonSettings
from tests.support.cancel_flow import check, execute, warm_up
from tests.support.waiting import wait_for_nodes

REPO = Path(__file__).resolve().parents[2]
HANDLERS = "tests.e2e.steering_handlers"


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_hundred_cancels_among_a_thousand_tasks_on_the_embedded_broker(
    tmp_path: Path,
) -> None:
    database = tmp_path / "records.sqlite3"
    cluster = EmbeddedCluster(BosonSettings(database_url=f"sqlite:///{database}"))  # type: ignore[arg-type]
    try:
        await cluster.start_control_plane()
        for node in ("n1", "n2"):
            await cluster.start_executor(node, slots=4, handler_modules=(HANDLERS,))
        client = await cluster.client()
        await wait_for_nodes(client, 2)
        await warm_up(client)
        run = await execute(client, tmp_path, seed=7, timeout=90)
        chatty = await client.submit("chatty", params={"steps": 3, "pause": 0.3})
        reports = [report.fraction async for report in chatty.progress()]
        assert (await chatty.result(timeout=30)).status == "succeeded"
        assert reports[-1] == 1.0
        assert await cluster.settle_record()
        async with client.records() as reader:
            figures = await check(run, reader)
        print("cancel flow (embedded):", figures, f"{run.took_s:.1f}s")
        assert figures["cancelled_while_queued"] >= 10, figures
        assert figures["cancelled_while_running"] >= 5, figures
        await client.close()
    finally:
        await cluster.stop()

    # Another process reads the task's progress and logs from the record.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    env["PYTHONPATH"] = str(REPO)
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "boson", "logs", chatty.task_id, "--json"],
        env=env | {"BOSON_DATABASE_URL": f"sqlite:///{database}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(shown.stdout)
    assert body["state"] == "succeeded"
    assert (body["progress"], body["progress_message"]) == (1.0, "step 3 of 3")
    assert "printed step 3" in body["logs"]
    assert "logged step 3" in body["logs"]
