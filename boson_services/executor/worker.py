"""A worker process of the runner: runs the tasks sent over its pipe, one at a time.

The process side (:func:`_worker_main`) and the executor's handle on it
(:class:`WorkerProcess`). Each worker leads a process group of its own, so
killing it kills what its handler started too; it reports a handler's
progress over its pipe while the task runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

import psutil

from boson_services.executor import capture
from boson_services.executor.capture import TailBuffer
from boson_services.executor.outcomes import RemoteError, Usage, describe
from boson_shared.errors import InvalidTaskInputError
from boson_shared.handlers import Retry, TaskInput, resolve
from boson_shared.task_control import ProgressSink, TaskControl

_SAMPLE_INTERVAL_S = 0.01


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
        module, qualname, task, env = request
        if env is not None:
            for name, value in env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
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


def receive_reply(connection: Connection, on_progress: ProgressSink) -> tuple[Any, ...]:
    """A worker's reply to its task, passing its progress reports on meanwhile (a thread)."""
    while True:
        message = connection.recv()
        if message[0] != "progress":
            return tuple(message)
        on_progress(message[1], message[2])


class WorkerProcess:
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
        self.env: dict[str, str | None] | None = None
        """The environment its last task ran with (``None``: never set)."""

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


__all__ = ["WorkerProcess", "receive_reply"]
