"""Where handlers run: processes (killed on timeout), threads, the loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from boson_services.executor.pool import HandlerFailedError, TaskRunner
from boson_shared.errors import TaskTimeoutError
from boson_shared.handlers import HandlerSpec, TaskInput, discover
from tests.support.cluster import ROOT

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


async def test_a_handler_error_is_typed_with_the_users_frames(
    runner: TaskRunner, registry: dict[str, HandlerSpec]
) -> None:
    with pytest.raises(HandlerFailedError) as caught:
        await runner.run(registry["explode"], task(), 30)
    assert caught.value.error_type == "ValueError"
    first, *frames = caught.value.message.splitlines()
    assert first == "boom"  # the type is not repeated in the text
    assert "sample_handlers.py" in frames[0]
    assert not any("boson_services" in line for line in frames)
    assert not caught.value.asked_retry


async def test_a_handler_raising_retry_asks_for_another_attempt(
    runner: TaskRunner, registry: dict[str, HandlerSpec]
) -> None:
    with pytest.raises(HandlerFailedError) as caught:
        await runner.run(registry["flaky"], task(), 30)
    assert caught.value.asked_retry
    assert caught.value.error_type == "Retry"


@pytest.mark.parametrize("name", ["hang_thread", "hang_inline"])
async def test_a_hanging_thread_or_inline_handler_times_out_on_time(
    runner: TaskRunner, registry: dict[str, HandlerSpec], name: str
) -> None:
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        await runner.run(registry[name], task(seconds=5), 0.3)
    assert time.monotonic() - started < 3


def test_the_process_exits_while_a_timed_out_thread_handler_runs_on() -> None:
    script = (
        "import asyncio\n"
        "from boson_services.executor.pool import TaskRunner\n"
        "from boson_shared.errors import TaskTimeoutError\n"
        "from boson_shared.handlers import TaskInput, discover\n"
        f"registry = discover([{MODULE!r}])\n"
        "async def main():\n"
        "    runner = TaskRunner(1, start_method='spawn')\n"
        "    try:\n"
        "        hang = TaskInput('t', None, {'seconds': 60})\n"
        "        await runner.run(registry['hang_thread'], hang, 0.3)\n"
        "    except TaskTimeoutError:\n"
        "        print('timed out')\n"
        "    await runner.close()\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip() == "timed out", done.stderr
    assert done.returncode == 0
    assert time.monotonic() - started < 20


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
