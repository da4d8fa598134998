"""A process's event loop ends within bounds, whatever it leaves running.

``asyncio.run`` waits without a bound for the tasks it cancels at the end; one
that swallows its cancel would keep the process from ever exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boson_shared.runtime.bounded_run import run_bounded
from tests.support.stuck_service import deaf_to_cancels

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


async def _leaves_a_deaf_task(left: list[asyncio.Task[None]]) -> str:
    left.append(asyncio.create_task(deaf_to_cancels(), name="stuck-close"))
    await asyncio.sleep(0)  # it starts, and so takes its cancel in its sleep
    return "done"


def test_a_leftover_task_that_ignores_its_cancel_is_left_behind_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    left: list[asyncio.Task[None]] = []
    began = time.monotonic()
    assert run_bounded(_leaves_a_deaf_task(left), leftover_wait_s=0.3) == "done"
    assert time.monotonic() - began < 3.0
    assert (
        "1 task(s) did not end within 0.3s of their cancel at shutdown, left behind: "
        "stuck-close (deaf_to_cancels)"
    ) in caplog.text


def test_leftover_tasks_that_take_their_cancel_end_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended = []

    async def waits() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append(True)

    left: list[asyncio.Task[None]] = []

    async def main() -> int:
        left.append(asyncio.create_task(waits()))
        await asyncio.sleep(0)
        return 7

    assert run_bounded(main(), leftover_wait_s=0.3) == 7
    assert ended == [True]
    assert caplog.text == ""


def test_the_coroutine_s_exception_is_raised_as_it_is() -> None:
    async def fails() -> None:
        raise ValueError("the reason")

    async def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(ValueError, match=r"^the reason$"):
        run_bounded(fails())
    with pytest.raises(SystemExit) as exited:
        run_bounded(exits())
    assert exited.value.code == 3


@pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="Ctrl-C is handled by someone else here",
)
def test_ctrl_c_cancels_the_coroutine_and_raises_keyboard_interrupt() -> None:
    cancelled = []

    async def interrupted() -> None:
        signal.raise_signal(signal.SIGINT)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(KeyboardInterrupt):
        run_bounded(interrupted())
    assert cancelled == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stuck_executor_job_is_waited_for_within_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    async def main() -> None:
        asyncio.get_running_loop().run_in_executor(None, release.wait, 20)

    began = time.monotonic()
    try:
        run_bounded(main(), leftover_wait_s=0.3)
        assert time.monotonic() - began < 3.0
        assert "the default executor's threads did not end within 0.3s" in caplog.text
    finally:
        release.set()


def test_an_async_generator_that_ignores_its_close_is_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released = False
    held: list[AsyncIterator[int]] = []

    async def ticks() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            while not released:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(3600)

    async def main() -> None:
        held.append(ticks())
        await anext(held[0])

    began = time.monotonic()
    run_bounded(main(), leftover_wait_s=0.3)
    assert time.monotonic() - began < 3.0
    assert "async generators did not close within 0.3s" in caplog.text
    released = True


def test_no_entry_point_runs_asyncio_run() -> None:
    """Processes and CLI commands start their loop with ``run_bounded``."""
    users = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in ("boson", "boson_services", "boson_shared")
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"asyncio\.(run\(|Runner\()", line)
    ]
    assert users == []
