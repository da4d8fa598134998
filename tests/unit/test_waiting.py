"""The CLI's wait: results as they arrive, one line per failure, Ctrl-C twice exits."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from boson.commands.waiting import format_result
from boson_shared.contract.messages import TaskFailure, TaskResult
from tests.support.cluster import ROOT


def failed(error_type: str, message: str) -> TaskResult:
    return TaskResult(
        task_id="t1",
        handler="h",
        status="failed",
        error=TaskFailure(error_type=error_type, message=message),
        attempts=1,
        reply_to="c",
        submitted_at=0.0,
    )


def test_a_failure_prints_its_type_once_and_the_users_frames_indented() -> None:
    text = format_result(
        failed("ValueError", 'kaboom\n  File "my_handlers.py", line 9, in boom\n    raise'), False
    )
    assert text == (
        "t1 failed after 1 attempt(s): ValueError: kaboom\n"
        '      File "my_handlers.py", line 9, in boom\n'
        "        raise"
    )


def test_a_second_ctrl_c_exits_at_once() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    script = (
        "import asyncio, os, signal\n"
        "from boson.commands.waiting import collect, interruptible\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    stop = asyncio.Event()\n"
        "    loop.call_later(0.5, os.kill, os.getpid(), signal.SIGINT)\n"
        "    loop.call_later(0.8, os.kill, os.getpid(), signal.SIGINT)\n"
        "    with interruptible(stop.set):\n"
        "        outcome = await collect(\n"
        "            None, asyncio.Queue(), ['a'], as_json=True, wait_timeout=None, stop=stop\n"
        "        )\n"
        "        assert outcome.interrupted and outcome.pending == ['a']\n"
        "        await asyncio.sleep(30)  # a slow clean-up\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, timeout=30, check=False
    )
    assert completed.returncode == 130
    assert time.monotonic() - started < 15
