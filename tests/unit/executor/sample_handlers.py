"""Handlers for the runner tests, importable by worker processes."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np

from boson_shared.handlers import Retry, TaskInput, handler


@handler("sleepy")
def sleepy(task: TaskInput) -> int:
    time.sleep(float(task.params.get("seconds", 10)))
    return os.getpid()


@handler("pid")
def pid(task: TaskInput) -> int:
    return os.getpid()


@handler("explode")
def explode(task: TaskInput) -> None:
    raise ValueError("boom")


@handler("allocate")
def allocate(task: TaskInput) -> int:
    block = np.ones(int(task.params["bytes"]) // 8)
    time.sleep(0.05)
    return int(block.size)


@handler("threaded", mode="thread")
def threaded(task: TaskInput) -> str:
    return "thread"


@handler("coro")
async def coro(task: TaskInput) -> str:
    await asyncio.sleep(float(task.params.get("seconds", 0)))
    return "async"


@handler("matrix", mode="inline")
def matrix(task: TaskInput) -> np.ndarray:
    return np.eye(2)


@handler("hang_thread", mode="thread")
def hang_thread(task: TaskInput) -> str:
    time.sleep(float(task.params.get("seconds", 30)))
    return "late"


@handler("hang_inline", mode="inline")
def hang_inline(task: TaskInput) -> str:
    time.sleep(float(task.params.get("seconds", 30)))
    return "late"


@handler("flaky")
def flaky(task: TaskInput) -> int:
    if task.attempt < 2:
        raise Retry("upstream busy")
    return task.attempt


@handler("wait_for_file")
async def wait_for_file(task: TaskInput) -> str:
    """Returns once the file ``params['path']`` exists: a long task the test ends."""
    path = str(task.params["path"])
    while not await asyncio.to_thread(os.path.exists, path):  # noqa: ASYNC110 - set by the test
        await asyncio.sleep(0.01)
    return "done"
