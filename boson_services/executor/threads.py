"""Daemon threads for handlers that run in the executor's own process.

A thread cannot be stopped, so a ``thread`` or sync ``inline`` handler that
overruns its timeout is reported as timed out and left to finish on its own.
:class:`concurrent.futures.ThreadPoolExecutor` would then keep the whole
process from exiting (its threads are joined at interpreter exit); these
threads are daemons, so a handler that never returns never holds the
process. Idle threads are reused; a thread still busy with an abandoned call
is simply not, and a new one is started when none is idle.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Call = tuple[Callable[..., Any], tuple[Any, ...], "Future[Any]"]


class DaemonThreads:
    """Runs calls on reusable daemon threads."""

    def __init__(self, name: str = "boson-handler") -> None:
        self._name = name
        self._idle: list[queue.SimpleQueue[_Call | None]] = []
        self._lock = threading.Lock()
        self._started = 0
        self._closed = False

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the handler threads are closed")
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                inbox = queue.SimpleQueue()
                self._started += 1
                thread = threading.Thread(
                    target=self._serve, args=(inbox,), name=f"{self._name}-{self._started}"
                )
                thread.daemon = True
                thread.start()
        inbox.put((function, args, future))
        return future

    def _serve(self, inbox: queue.SimpleQueue[_Call | None]) -> None:
        while True:
            call = inbox.get()
            if call is None:
                return
            function, args, future = call
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args))
                except BaseException as error:
                    future.set_exception(error)
            with self._lock:
                if self._closed:
                    return
                self._idle.append(inbox)

    def close(self) -> None:
        """Let idle threads end; busy ones end when their call returns."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)


__all__ = ["DaemonThreads"]
