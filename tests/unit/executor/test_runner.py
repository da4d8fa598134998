"""Where handlers run: processes (killed on timeout), threads, the loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from boson_services.executor.pool import HandlerFailedError, TaskRunner
from boson_shared.errors import TaskTimeoutError
from boson_shared.handlers import HandlerSpec, TaskInput, discover

MODULE = "tests.unit.executor.sample_handlers"


@pytest.fixture
def registry() -> dict[str, HandlerSpec]:
    return discover([MODULE])


@pytest.fixture
async def runner() -> AsyncIterator[TaskRunner]:
    runner = TaskRunner(1, start_method="forkserver")
    yield runner
    await runner.close()


def task(**params: object) -> TaskInput:
    return TaskInput(task_id="t", data=None, params=params)


def test_discovery_reads_modes(registry: dict[str, HandlerSpec]) -> None:
    assert registry["pid"].mode == "process"
    assert registry["threaded"].mode == "thread"
    assert registry["coro"].mode == "inline"  # coroutines always run on the loop


async def test_a_process_handler_runs_in_another_process(
    runner: TaskRunner, registry: dict[str, HandlerSpec]
) -> None:
    import os

    outcome = await runner.run(registry["pid"], task(), 30)
    assert outcome.output.value != os.getpid()
    assert outcome.usage.wall_s >= 0


async def test_timeout_kills_the_worker_and_the_slot_recovers(
    runner: TaskRunner, registry: dict[str, HandlerSpec]
) -> None:
    first = (await runner.run(registry["pid"], task(), 30)).output.value
    with pytest.raises(TaskTimeoutError):
        await runner.run(registry["sleepy"], task(seconds=30), 0.5)
    # The one slot is usable again, by a fresh worker process.
    second = (await runner.run(registry["pid"], task(), 30)).output.value
    assert second != first


async def test_a_handler_error_is_typed_and_retryable(
    runner: TaskRunner, registry: dict[str, HandlerSpec]
) -> None:
    with pytest.raises(HandlerFailedError, match="ValueError: boom"):
        await runner.run(registry["explode"], task(), 30)


async def test_peak_memory_is_reported(
    runner: TaskRunner, registry: dict[str, HandlerSpec]
) -> None:
    outcome = await runner.run(registry["allocate"], task(bytes=64 * 1024 * 1024), 30)
    assert outcome.usage.peak_memory_bytes > 32 * 1024 * 1024


async def test_thread_async_and_inline_modes(
    runner: TaskRunner, registry: dict[str, HandlerSpec]
) -> None:
    assert (await runner.run(registry["threaded"], task(), 5)).output.value == "thread"
    assert (await runner.run(registry["coro"], task(), 5)).output.value == "async"
    with pytest.raises(TaskTimeoutError):
        await runner.run(registry["coro"], task(seconds=5), 0.1)


def live_workers() -> list[int]:
    """Worker processes still running: the forkserver's children (it outlives the runner)."""
    import psutil

    alive: list[int] = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE and child.ppid() != os.getpid():
                alive.append(child.pid)
    return alive


async def test_closing_while_a_cancelled_task_releases_its_worker(
    registry: dict[str, HandlerSpec],
) -> None:
    """An executor's drain cancels what outlived the grace, then closes the runner.

    Found by CI: the cancelled run killed its worker while ``close`` stopped the
    same one (``OSError: Bad file descriptor`` from the second ``close`` of its
    pipe), then spawned a replacement that ``close`` never saw and left running.
    """
    runner = TaskRunner(1, start_method="forkserver")
    running = asyncio.create_task(runner.run(registry["sleepy"], task(seconds=30), 60))
    await asyncio.sleep(1.0)  # the worker has the task
    assert live_workers()
    running.cancel()
    closed = await asyncio.gather(running, runner.close(), return_exceptions=True)
    assert isinstance(closed[0], asyncio.CancelledError)
    assert closed[1] is None
    await asyncio.sleep(0.2)
    assert live_workers() == []
