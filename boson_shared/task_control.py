"""What a running handler asks of and tells its executor: cancelled yet? how far?

Every :class:`~boson_shared.handlers.TaskInput` carries a :class:`TaskControl`.
A handler polls ``task.cancelled`` (thread-mode and coroutine handlers, which
cannot be killed, should stop soon after it turns true) and reports
``task.progress(fraction, message)`` as often as it likes: the executor sends
on only the latest report, at most about twice a second per task.

A control never crosses a process boundary as it is: pickled, it becomes a
fresh one, and a worker process installs its own that reports through its pipe.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from boson_shared.contract.messages import MAX_PROGRESS_MESSAGE

ProgressSink = Callable[[float, str], None]
"""Where progress reports go: called with the fraction (0..1) and the message."""


class TaskControl:
    """A task's cancel flag and progress sink, shared by the handler and its executor."""

    def __init__(self, report: ProgressSink | None = None) -> None:
        self._cancelled = threading.Event()
        self._report = report

    @property
    def cancelled(self) -> bool:
        """Whether someone asked to stop the task."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds until the task is cancelled; whether it was."""
        return self._cancelled.wait(timeout)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the task has got: ``fraction`` from 0 to 1 (clamped), a short message.

        Raises ``ValueError`` for a fraction that is not a finite number.
        """
        value = float(fraction)
        if not math.isfinite(value):
            raise ValueError(f"progress must be a finite number, not {fraction!r}")
        if self._report is not None:
            self._report(min(1.0, max(0.0, value)), str(message)[:MAX_PROGRESS_MESSAGE])

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskControl, ())


__all__ = ["ProgressSink", "TaskControl"]
