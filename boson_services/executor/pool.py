"""Where handlers run: worker processes, threads, or the event loop.

Process mode keeps one worker process per slot rather than a
``ProcessPoolExecutor``: a task that overruns its timeout is stopped by
killing *its* worker (a pool cannot cancel a running call), and a fresh worker
takes the slot. Workers come from a forkserver that has already imported
numpy and the built-ins, so replacing one is cheap and never forks the event
loop's threads.

Every run reports what the task really used — wall time, CPU time and the
peak memory it added — for the scheduler's online demand model — and what
its handler printed or logged (:mod:`boson_services.executor.capture`).

Each worker leads a process group of its own, so killing it (a timeout, a
cancel) kills the processes its handler started too. A worker reports a
handler's progress over its pipe while the task runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import psutil

from boson_services.executor import capture
from boson_services.executor.capture import TailBuffer
from boson_services.executor.threads import DaemonThreads
from boson_shared import handlers as handlers_module
from boson_shared.errors import (
    InvalidTaskInputError,
    PermanentTaskError,
    TaskError,
    TaskTimeoutError,
)
from boson_shared.handlers import HandlerSpec, Retry, TaskInput, TaskOutput, resolve
from boson_shared.task_control import ProgressSink, TaskControl

WORKER_DIED = "WorkerDied"
"""The error type of a task whose worker process died under it (retried)."""
_SAMPLE_INTERVAL_S = 0.01
_PRELOAD = ["numpy", "boson_services.executor.builtins"]


@dataclass(frozen=True)
class Usage:
    wall_s: float
    cpu_s: float
    peak_memory_bytes: int


@dataclass(frozen=True)
class RunOutcome:
    output: TaskOutput
    usage: Usage
    logs: str | None = None


@dataclass(frozen=True)
class RemoteError:
    """A handler's exception, carried across the process boundary as text."""

    error_type: str
    message: str
    permanent: bool
    asked_retry: bool = False


class HandlerFailedError(TaskError):
    """A handler raised; ``error_type`` is the name of what it raised.

    ``message`` is its text followed by the last frames of its traceback (the
    user's code). ``asked_retry``: it raised :class:`~boson_shared.handlers.Retry`.
    """

    def __init__(
        self, error_type: str, message: str, *, asked_retry: bool = False, logs: str | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.asked_retry = asked_retry
        self.logs = logs
        """What the handler printed or logged before it raised."""


class InvalidInputFromWorkerError(InvalidTaskInputError):
    """A worker's handler rejected its input (never retried)."""

    error_type = "InvalidTaskInputError"


_OWN_CODE = (str(Path(__file__).resolve().parent), str(Path(handlers_module.__file__).resolve()))
USER_FRAMES = 3
"""Frames of a handler's traceback shown to its submitter (the innermost ones)."""


def describe(error: BaseException) -> str:
    """An error's text and the innermost frames of the handler's own code.

    The frames kept are those after the last one of the executor's (the
    call into the handler), so neither Boson's nor asyncio's show.
    """
    frames = traceback.extract_tb(error.__traceback__)
    own = [i for i, frame in enumerate(frames) if frame.filename.startswith(_OWN_CODE)]
    user = frames[own[-1] + 1 :] if own else frames
    text = str(error)[:2000]
    if not user:
        return text
    listed = "".join(traceback.format_list(user[-USER_FRAMES:])).rstrip()
    return f"{text}\n{listed}"


def handler_failure(error: Exception, logs: str | None = None) -> HandlerFailedError:
    return HandlerFailedError(
        type(error).__name__, describe(error), asked_retry=isinstance(error, Retry), logs=logs
    )


def as_output(value: Any) -> TaskOutput:
    return value if isinstance(value, TaskOutput) else TaskOutput(value)


def _run_measured(function: Callable[..., Any], task: TaskInput) -> tuple[Any, Usage]:
    """Run in the current process, sampling RSS to find the task's peak."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(_SAMPLE_INTERVAL_S):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        value = function(task)
    finally:
        done.set()
        sampler.join()
    peak = max(peak, process.memory_info().rss)
    usage = Usage(time.perf_counter() - wall0, time.process_time() - cpu0, peak - baseline)
    return value, usage


def _worker_main(connection: Connection) -> None:
    """A worker process: run tasks sent over the pipe until told to stop.

    The worker leads a new session (and so a process group of its own):
    killing the group kills whatever its handler started. Its executor owns
    shutdown, and the worker ignores Ctrl-C. An executor that died (its pipe
    closed) ends the worker quietly. While a task runs, its progress reports
    go up the pipe as ``("progress", fraction, message)``, under a lock (a
    handler may report from threads of its own).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # already a group leader (e.g. started by hand)
        os.setsid()
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            connection.send(message)

    def report(fraction: float, message: str) -> None:
        with contextlib.suppress(OSError):
            send(("progress", fraction, message))

    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        module, qualname, task = request
        task = dataclasses.replace(task, control=TaskControl(report))
        output = TailBuffer()
        try:
            with capture.captured(output):
                value, usage = _run_measured(resolve(module, qualname), task)
            reply: tuple[str, Any, Usage | None, str | None] = ("ok", value, usage, output.text())
        except BaseException as error:
            permanent = isinstance(error, InvalidTaskInputError)
            text = str(error)[:2000] if permanent else describe(error)
            remote = RemoteError(type(error).__name__, text, permanent, isinstance(error, Retry))
            reply = ("error", remote, None, output.text())
        try:
            send(reply)
        except OSError:  # BrokenPipeError: the executor is gone
            return
        except Exception as error:  # the output does not pickle (sent whole or not at all)
            unsent = RemoteError(type(error).__name__, f"output not sendable: {error}"[:2000], True)
            try:
                send(("error", unsent, None, output.text()))
            except OSError:
                return


def _receive(connection: Connection, on_progress: ProgressSink) -> tuple[Any, ...]:
    """A worker's reply to its task, passing its progress reports on meanwhile (a thread)."""
    while True:
        message = connection.recv()
        if message[0] != "progress":
            return tuple(message)
        on_progress(message[1], message[2])


class _Worker:
    """One worker process and its pipe; ``kill`` and ``stop`` may race from two threads.

    A drain cancels a running task (whose clean-up kills its worker) while the
    runner's ``close`` stops every worker, so the pipe is closed under a lock
    and only once: a second ``close`` of it raises ``EBADF``, or worse, closes
    a descriptor number the process has since reused.
    """

    def __init__(self, context: BaseContext) -> None:
        parent, child = multiprocessing.Pipe()
        self.connection = parent
        self._closed = False
        self._lock = threading.Lock()
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(child,), daemon=True
        )
        self.process.start()
        child.close()

    def kill(self) -> None:
        """Kill the worker and every process of its group (what its handler started)."""
        self.kill_group()
        self.process.kill()
        self.process.join(timeout=5)
        self.kill_group()  # a child the handler forked while we killed
        self._close_pipe()

    def kill_group(self) -> None:
        pid = self.process.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Ask the worker to exit after its current task; kill it if it will not."""
        with self._lock:
            if not self._closed:
                with contextlib.suppress(OSError):
                    self.connection.send(None)
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2)
        self._close_pipe()

    def _close_pipe(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.connection.close()


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
        self._idle: asyncio.Queue[_Worker] | None = None
        self._spawning: asyncio.Future[None] | None = None
        self._workers: set[_Worker] = set()
        self._closing = False

    async def _idle_workers(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            # Shielded: a task cancelled while the workers start must not leave
            # the pool short of the workers still starting.
            self._spawning = asyncio.ensure_future(self._spawn_workers(self._idle))
        if self._spawning is not None and not self._spawning.done():
            await asyncio.shield(self._spawning)
        return self._idle

    async def _spawn_workers(self, idle: asyncio.Queue[_Worker]) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self._slots):
            worker = await loop.run_in_executor(self._threads, _Worker, self._context)
            self._workers.add(worker)
            idle.put_nowait(worker)

    async def run(self, spec: HandlerSpec, task: TaskInput, time_limit: float) -> RunOutcome:
        """Run ``task`` in its handler's mode; TaskTimeoutError once ``time_limit`` passes.

        The timeout holds in every mode: a process-mode worker is killed; a
        thread-mode or sync inline handler runs on a daemon thread, reported
        as timed out on time and left to finish (a thread cannot be killed);
        a coroutine handler is cancelled (one that blocks the loop without
        awaiting cannot be, and is the one case the timeout cannot hold).
        """
        if spec.mode == "process":
            return await self._run_in_process(spec, task, time_limit)
        if spec.is_async:
            return await self._run_async(spec, task, time_limit)
        return await self._run_on_thread(spec, task, time_limit)

    async def _run_async(self, spec: HandlerSpec, task: TaskInput, time_limit: float) -> RunOutcome:
        capture.install()
        output = TailBuffer()
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
        self, spec: HandlerSpec, task: TaskInput, time_limit: float
    ) -> RunOutcome:
        capture.install()
        output = TailBuffer()
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
        self, spec: HandlerSpec, task: TaskInput, time_limit: float
    ) -> RunOutcome:
        idle = await self._idle_workers()
        worker = await idle.get()
        loop = asyncio.get_running_loop()
        replace = False
        try:
            worker.connection.send((spec.module, spec.qualname, task))

            def on_progress(fraction: float, message: str) -> None:
                loop.call_soon_threadsafe(task.control.progress, fraction, message)

            reply = loop.run_in_executor(self._threads, _receive, worker.connection, on_progress)
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

    async def _replace(self, worker: _Worker) -> None:
        """Kill a worker whose task was abandoned; a fresh one takes its slot.

        Once the runner is closing nothing takes the slot: a replacement
        spawned then would outlive ``close``, which has already stopped the
        workers it knew of.
        """
        # Kills go to the default executor: ``close`` may have shut ours down.
        await asyncio.to_thread(worker.kill)
        self._workers.discard(worker)
        fresh = await asyncio.to_thread(_Worker, self._context)
        if self._closing:  # checked after the spawn, which yields to ``close``
            await asyncio.to_thread(fresh.kill)
            return
        self._workers.add(fresh)
        assert self._idle is not None
        self._idle.put_nowait(fresh)

    async def close(self) -> None:
        self._closing = True
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
    "USER_FRAMES",
    "WORKER_DIED",
    "HandlerFailedError",
    "InvalidInputFromWorkerError",
    "RemoteError",
    "RunOutcome",
    "TaskRunner",
    "Usage",
    "as_output",
    "describe",
    "handler_failure",
]
