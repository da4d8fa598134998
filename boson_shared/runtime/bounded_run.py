"""``asyncio.run`` with a bounded shutdown: a process's entry point.

When its coroutine ends, ``asyncio.run`` cancels the tasks left over and
waits for every one of them without a bound; a leftover task that does not
take its cancel (a library's background task stuck in a close) keeps the
process from ever exiting. :func:`run_bounded` runs the coroutine the same
way, then shuts down the same way (leftover tasks, async generators, the
default executor), each step waiting a bounded while and saying in one log
line what it left behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

LEFTOVER_WAIT_S = 5.0
"""How long each step of the shutdown waits by default: the leftover tasks
after their cancel, the async generators' close, the default executor's threads."""


def run_bounded(
    coro: Coroutine[Any, Any, T],
    *,
    leftover_wait_s: float = LEFTOVER_WAIT_S,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run ``coro`` on a new event loop and close the loop, as ``asyncio.run`` does.

    Returns what ``coro`` returns, or raises what it raises; Ctrl-C (SIGINT,
    when it has its default handler and this is the main thread) cancels
    ``coro`` and raises :class:`KeyboardInterrupt`, a second one at once.
    The shutdown differs in its bounds: tasks still running are cancelled and
    waited for at most ``leftover_wait_s`` seconds, then the async generators
    closed and the default executor's threads ended within as long each; what
    did not end is named in a log line and left behind, and the loop closed.

    ``loop_factory`` makes the loop (uvloop's, say); without it the loop is
    asyncio's own and becomes this thread's current loop while it runs.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # none running: as it must be
    else:
        raise RuntimeError("run_bounded() cannot be called from a running event loop")
    if loop_factory is None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    else:
        loop = loop_factory()
    # The loop's default executor, held here so that its shutdown can be
    # bounded: ``loop.shutdown_default_executor`` waits for its threads
    # without a bound, and once cancelled blocks the loop in a join.
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
    loop.set_default_executor(executor)
    try:
        return _run(loop, coro)
    finally:
        try:
            _end_leftover_tasks(loop, leftover_wait_s)
            _close_async_generators(loop, leftover_wait_s)
            _end_executor(loop, executor, leftover_wait_s)
        finally:
            if loop_factory is None:
                asyncio.set_event_loop(None)
            loop.close()


def _run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.Runner.run``: the coroutine as a task, Ctrl-C as its cancel."""
    task = loop.create_task(coro)
    interrupts = 0

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and not task.done():
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # wakes a loop blocked in select()
            return
        raise KeyboardInterrupt

    handler: Callable[[int, FrameType | None], None] | None = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        handler = on_sigint
        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # an interpreter without signals on its main thread
            handler = None
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if interrupts > 0 and task.uncancel() == 0:
            raise KeyboardInterrupt from None
        raise
    finally:
        if handler is not None and signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _end_leftover_tasks(loop: asyncio.AbstractEventLoop, within_s: float) -> None:
    """Cancel the tasks still running and wait for them at most ``within_s``."""
    leftovers = asyncio.all_tasks(loop)
    if not leftovers:
        return
    for task in leftovers:
        task.cancel()
    _, running = loop.run_until_complete(asyncio.wait(leftovers, timeout=within_s))
    if running:
        logger.error(
            "%d task(s) did not end within %.1fs of their cancel at shutdown, left behind: %s",
            len(running),
            within_s,
            ", ".join(sorted(_describe(task) for task in running)),
        )
        for task in running:
            _left_behind(task)
    for task in leftovers - running:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during run_bounded() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return f"{task.get_name()} ({getattr(coro, '__qualname__', coro)!s})"


def _left_behind(task: asyncio.Task[Any]) -> None:
    """Said once already: asyncio would say it again, as "Task was destroyed
    but it is pending!" with the task's repr, when the task is collected
    (at the process's exit, after the loop has closed). The same switch
    ``run_until_complete`` turns off for a task of its own it gives up on."""
    with contextlib.suppress(AttributeError):
        task._log_destroy_pending = False  # type: ignore[attr-defined]


def _close_async_generators(loop: asyncio.AbstractEventLoop, within_s: float) -> None:
    """``loop.shutdown_asyncgens``, given at most ``within_s``."""
    closing = loop.create_task(loop.shutdown_asyncgens())
    loop.run_until_complete(asyncio.wait({closing}, timeout=within_s))
    if not closing.done():
        logger.error("async generators did not close within %.1fs at shutdown", within_s)
        closing.cancel()  # not waited for: what ignores its cancel stays behind
        _left_behind(closing)


def _end_executor(
    loop: asyncio.AbstractEventLoop, executor: concurrent.futures.Executor, within_s: float
) -> None:
    """Shut the default ``executor`` down, waiting at most ``within_s`` for its threads.

    Its shutdown runs on a thread of its own, as in ``loop.shutdown_default_executor``,
    but the wait for that thread is bounded (and made with the loop running,
    should a job still need it).
    """
    ended = loop.create_future()

    def shut_down() -> None:
        executor.shutdown(wait=True)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(functools.partial(_set_done, ended))

    threading.Thread(target=shut_down, name="asyncio:executor-shutdown", daemon=True).start()
    loop.run_until_complete(asyncio.wait({ended}, timeout=within_s))
    if not ended.done():
        logger.error(
            "the default executor's threads did not end within %.1fs at shutdown", within_s
        )


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


__all__ = ["LEFTOVER_WAIT_S", "run_bounded"]
