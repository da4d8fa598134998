"""Task handlers of the reliability tests, loaded by executors with ``--handler-module``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from boson_shared.handlers import Retry, TaskInput, handler


@handler("poison-timed", mode="inline")
def poison_timed(task: TaskInput) -> None:
    """Always fails, noting when each attempt ran (``params['log']``, one JSON line each)."""
    line = json.dumps({"attempt": task.attempt, "at": time.time(), "task_id": task.task_id})
    with Path(str(task.params["log"])).open("a") as log:
        log.write(line + "\n")
    raise RuntimeError(f"poison task {task.task_id} always fails")


GATE_POLL_S = 0.02


@handler("sleep", mode="process")
def sleep(task: TaskInput) -> dict[str, float]:
    """Sleep ``params['seconds']`` in a worker process (long, but costs no CPU).

    With ``params['gate']`` (a path), it then ends only once that file exists:
    the test decides when the first tasks may end. Past
    ``params['gate_timeout_s']`` (default 60) without it, the task fails.
    """
    seconds = float(task.params.get("seconds", 1.0))
    time.sleep(seconds)
    gate = task.params.get("gate")
    if gate is not None:
        deadline = time.monotonic() + float(task.params.get("gate_timeout_s", 60.0))
        while not Path(str(gate)).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"gate {gate} never opened")
            time.sleep(GATE_POLL_S)
    return {"slept_s": seconds}


@handler("tenant-hold")
async def tenant_hold(task: TaskInput) -> dict[str, float]:
    """Report that it started, then hold its slot ``params['seconds']`` (a
    coroutine: a cancel or a preemption stops it at once)."""
    task.progress(0.0, "started")
    seconds = float(task.params.get("seconds", 1.0))
    await asyncio.sleep(seconds)
    return {"held_s": seconds}


@handler("fail-first", mode="inline")
def fail_first(task: TaskInput) -> dict[str, int]:
    """Asks for a retry on its first attempt and succeeds on the next."""
    if task.attempt == 1:
        raise Retry(f"task {task.task_id} wants a second attempt")
    return {"attempt": task.attempt}
