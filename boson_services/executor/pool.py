"""Where handlers run: worker processes, threads, or the event loop.

Process mode keeps one worker process per slot rather than a
``ProcessPoolExecutor``: a task that overruns its timeout is stopped by
killing *its* worker (a pool cannot cancel a running call), and a fresh worker
takes the slot. Workers come from a forkserver that has already imported
numpy and the built-ins, so replacing one is cheap and never forks the event
loop's threads.

A task's GPU devices are set in its worker's environment before its handler
runs (``env``): a worker that ran with other devices is replaced first, since
a process that has started CUDA keeps the devices it started with. Handlers
in thread or inline mode share the executor's process and environment: they
learn their devices from ``TaskInput`` only.

Every run reports what the task really used — wall time, CPU time and the
peak memory it added — for the scheduler's online demand model — and what
its handler printed or logged (:mod:`boson_services.executor.capture`).

Each worker leads a process group of its own, so killing it (a timeout, a
cancel) kills the processes its handler started too. A worker reports a
handler's progress over its pipe while the task runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from boson_services.executor import capture
from boson_services.executor.capture import TailBuffer
from boson_services.executor.outcomes import (
    HandlerFailedError,
    InvalidInputFromWorkerError,
    RemoteError,
    RunOutcome,
    Usage,
    as_output,
    handler_failure,
)
from boson_services.executor.threads import DaemonThreads
from boson_services.executor.worker import WorkerProcess, receive_reply
from boson_shared.errors import PermanentTaskError, TaskTimeoutError
from boson_shared.handlers import HandlerSpec, TaskInput

WORKER_DIED = "WorkerDied"
"""The error type of a task whose worker process died under it (retried)."""
SPAWN_WAIT_ON_CLOSE_S = 1.0
"""How long closing the runner waits for replacement workers still starting."""
_PRELOAD = ["numpy", "boson_services.executor.builtins"]


class TaskRunner:
    """Runs handlers in their mode with a timeout, reporting usage."""

    def __init__(self, slots: int, *, start_method: str = "forkserver") -> None:
        self._slots = slots
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(_PRELOAD)
        # Threads that wait on worker pipes.
        self._threads = ThreadPoolExecutor(max_workers=2 * slots, thread_name_prefix="boson-task")
        self._handler_threads = DaemonThreads()
        self._idle: asyncio.Queue[WorkerProcess] | None = None
        self._spawning: asyncio.Future[None] | None = None
        self._spawns: set[asyncio.Future[None]] = set()
        self._workers: set[WorkerProcess] = set()
        self._closing = False

    async def _idle_workers(self) -> asyncio.Queue[WorkerProcess]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            # Shielded: a task cancelled while the workers start must not leave
            # the pool short of the workers still starting.
            self._spawning = asyncio.ensure_future(self._spawn_workers(self._idle))
        if self._spawning is not None and not self._spawning.done():
            await asyncio.shield(self._spawning)
        return self._idle

    async def _spawn_workers(self, idle: asyncio.Queue[WorkerProcess]) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self._slots):
            worker = await loop.run_in_executor(self._threads, WorkerProcess, self._context)
            self._workers.add(worker)
            idle.put_nowait(worker)

    async def run(
        self,
        spec: HandlerSpec,
        task: TaskInput,
        time_limit: float,
        output: TailBuffer | None = None,
        env: dict[str, str | None] | None = None,
    ) -> RunOutcome:
        """Run ``task`` in its handler's mode; TaskTimeoutError once ``time_limit`` passes.

        A thread-mode or coroutine handler's output goes to ``output`` as it
        is written (so it is there even if the run is cancelled); a worker
        process returns its own with the outcome. ``env``: variables its
        worker process runs with (``None`` value: unset), in process mode
        (module docstring).

        The timeout holds in every mode: a process-mode worker is killed; a
        thread-mode or sync inline handler runs on a daemon thread, reported
        as timed out on time and left to finish (a thread cannot be killed);
        a coroutine handler is cancelled (one that blocks the loop without
        awaiting cannot be, and is the one case the timeout cannot hold).
        """
        if spec.mode == "process":
            return await self._run_in_process(spec, task, time_limit, env)
        if spec.is_async:
            return await self._run_async(spec, task, time_limit, output or TailBuffer())
        return await self._run_on_thread(spec, task, time_limit, output or TailBuffer())

    async def _run_async(
        self, spec: HandlerSpec, task: TaskInput, time_limit: float, output: TailBuffer
    ) -> RunOutcome:
        capture.install()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        # The coroutine runs in a task of its own, in a context whose output
        # goes to this task's buffer; cancelling us cancels it.
        context = contextvars.copy_context()
        context.run(capture.current.set, output)
        run = asyncio.get_running_loop().create_task(spec.function(task), context=context)
        try:
            async with asyncio.timeout(time_limit):
                value = await run
        except TimeoutError as error:
            raise TaskTimeoutError(f"task ran past its {time_limit:g}s timeout") from error
        except (PermanentTaskError, TaskTimeoutError):
            raise
        except Exception as error:
            raise handler_failure(error, output.text()) from error
        usage = Usage(time.perf_counter() - wall0, time.process_time() - cpu0, 0)
        return RunOutcome(as_output(value), usage, output.text())

    async def _run_on_thread(
        self, spec: HandlerSpec, task: TaskInput, time_limit: float, output: TailBuffer
    ) -> RunOutcome:
        capture.install()
        context = contextvars.copy_context()
        context.run(capture.current.set, output)
        future = asyncio.wrap_future(
            self._handler_threads.submit(context.run, _run_inline, spec.function, task)
        )
        try:
            value, usage = await asyncio.wait_for(asyncio.shield(future), time_limit)
        except TimeoutError as error:
            # A thread cannot be killed: it finishes in the background, on a
            # daemon thread that never keeps the process from exiting.
            future.add_done_callback(_consume_outcome)
            raise TaskTimeoutError(f"task ran past its {time_limit:g}s timeout") from error
        except asyncio.CancelledError:
            # Cancelled: the handler sees task.cancelled; its result is discarded.
            future.add_done_callback(_consume_outcome)
            raise
        except (PermanentTaskError, TaskTimeoutError):
            raise
        except Exception as error:
            raise handler_failure(error, output.text()) from error
        return RunOutcome(as_output(value), usage, output.text())

    async def _run_in_process(
        self,
        spec: HandlerSpec,
        task: TaskInput,
        time_limit: float,
        env: dict[str, str | None] | None = None,
    ) -> RunOutcome:
        idle = await self._idle_workers()
        worker = await idle.get()
        loop = asyncio.get_running_loop()
        replace = False
        try:
            if env is not None and worker.env is not None and worker.env != env:
                worker = await self._respawn(worker)
            if env is not None:
                worker.env = env
            worker.connection.send((spec.module, spec.qualname, task, env))

            def on_progress(fraction: float, message: str) -> None:
                loop.call_soon_threadsafe(task.control.progress, fraction, message)

            reply = loop.run_in_executor(
                self._threads, receive_reply, worker.connection, on_progress
            )
            try:
                status, value, usage, logs = await asyncio.wait_for(reply, time_limit)
            except TimeoutError as error:
                replace = True
                raise TaskTimeoutError(f"task ran past its {time_limit:g}s timeout") from error
            except (EOFError, OSError) as error:
                replace = True
                raise HandlerFailedError(WORKER_DIED, f"worker process died: {error}") from error
        except asyncio.CancelledError:
            replace = True
            raise
        finally:
            if replace:
                await self._replace(worker)
            else:
                idle.put_nowait(worker)
        if status == "error":
            assert isinstance(value, RemoteError)
            if value.permanent:
                raise InvalidInputFromWorkerError(value.message)
            raise HandlerFailedError(
                value.error_type, value.message, asked_retry=value.asked_retry, logs=logs
            )
        return RunOutcome(as_output(value), usage, logs)

    async def _respawn(self, worker: WorkerProcess) -> WorkerProcess:
        """A fresh worker in place of ``worker`` (stopped), for the caller's own use."""
        await asyncio.to_thread(worker.stop)
        self._workers.discard(worker)
        fresh = await asyncio.to_thread(WorkerProcess, self._context)
        self._workers.add(fresh)
        return fresh

    async def _replace(self, worker: WorkerProcess) -> None:
        """Kill a worker whose task was abandoned; a fresh one takes its slot.

        Only the kill is awaited: the fresh worker starts in the background,
        so the task's slot is free at once (a timeout, a cancel) and the next
        process-mode task waits for the worker instead. Once the runner is
        closing nothing takes the slot: a replacement spawned then would
        outlive ``close``, which has already stopped the workers it knew of.
        """
        # Kills go to the default executor: ``close`` may have shut ours down.
        await asyncio.to_thread(worker.kill)
        self._workers.discard(worker)
        spawn = asyncio.ensure_future(self._spawn_replacement())
        self._spawns.add(spawn)
        spawn.add_done_callback(self._spawns.discard)

    async def _spawn_replacement(self) -> None:
        fresh = await asyncio.to_thread(WorkerProcess, self._context)
        if self._closing:  # checked after the spawn, which yields to ``close``
            await asyncio.to_thread(fresh.kill)
            return
        self._workers.add(fresh)
        assert self._idle is not None
        self._idle.put_nowait(fresh)

    async def close(self) -> None:
        self._closing = True
        if self._spawns:
            # Replacements still starting kill themselves once started; a stop
            # waits for them only briefly (a worker whose executor is gone
            # ends too: its pipe closes).
            await asyncio.wait(self._spawns, timeout=SPAWN_WAIT_ON_CLOSE_S)
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._threads, worker.stop) for worker in self._workers)
        )
        self._workers.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._handler_threads.close()


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _run_inline(function: Callable[..., Any], task: TaskInput) -> tuple[Any, Usage]:
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    value = function(task)
    return value, Usage(time.perf_counter() - wall0, time.thread_time() - cpu0, 0)


__all__ = [
    "WORKER_DIED",
    "HandlerFailedError",
    "RunOutcome",
    "TaskRunner",
]
