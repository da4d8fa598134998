"""Handlers for the cancel, progress and logs tests.

Each records every start as a file ``<starts>/<task id>.<pid>.<n>`` (the
tests count them), then works for ``seconds`` unless cancelled first. The
process-mode one starts a child process and writes both pids, so a test can
check that a cancel left neither running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from boson_shared.handlers import TaskInput, handler

logger = logging.getLogger(__name__)


def note_start(task: TaskInput) -> None:
    starts = task.params.get("starts")
    if starts:
        Path(starts, f"{task.task_id}.{os.getpid()}.{uuid.uuid4().hex[:6]}").touch()


@handler("steer_thread", mode="thread")
def steer_thread(task: TaskInput) -> dict[str, object]:
    """Waits ``seconds``, or until cancelled (it polls ``task.cancelled``)."""
    note_start(task)
    seconds = float(task.params.get("seconds", 0.0))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if task.cancelled:
            return {"stopped": True}
        time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
    return {"slept": seconds}


@handler("steer_async")
async def steer_async(task: TaskInput) -> dict[str, object]:
    """A coroutine: sleeps ``seconds`` (a cancel cancels it)."""
    note_start(task)
    await asyncio.sleep(float(task.params.get("seconds", 0.0)))
    return {"slept": task.params.get("seconds", 0.0)}


@handler("steer_process", mode="process")
def steer_process(task: TaskInput) -> dict[str, object]:
    """Starts a child that would sleep a minute, writes ``<pids>/<task id>``, sleeps."""
    note_start(task)
    pids = task.params.get("pids")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    if pids:
        Path(pids, task.task_id).write_text(f"{os.getpid()} {child.pid}")
    try:
        time.sleep(float(task.params.get("seconds", 0.0)))
    finally:
        child.kill()
        child.wait()
    return {"slept": task.params.get("seconds", 0.0)}


@handler("chatty", mode="thread")
def chatty(task: TaskInput) -> dict[str, object]:
    """Reports progress in steps, prints and logs each; prints ``BOSON_KEYS`` (or ``say``)
    first, which the captured output must show redacted."""
    steps = int(task.params.get("steps", 5))
    pause = float(task.params.get("pause", 0.3))
    print(f"keys are {task.params.get('say') or os.environ.get('BOSON_KEYS', 'unset')}")
    for step in range(1, steps + 1):
        task.progress(step / steps, f"step {step} of {steps}")
        print(f"printed step {step}")
        logger.warning("logged step %d", step)
        time.sleep(pause)
    return {"steps": steps}


@handler("chatty_process", mode="process")
def chatty_process(task: TaskInput) -> dict[str, object]:
    """As ``chatty``, in a worker process."""
    return chatty(task)


__all__ = ["chatty", "chatty_process", "steer_async", "steer_process", "steer_thread"]
