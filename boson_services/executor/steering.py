"""Steering the tasks an executor holds: cancels remembered, progress coalesced.

:class:`Cancels` remembers every id a :class:`CancelTask` named (bounded: the
oldest are forgotten first), so a task that reaches this node after its
cancel — still in the node's queue, in a retry tier, prefetched behind busy
slots — is dropped as cancelled instead of started; and it holds, for each
task running here, its control and the asyncio task that runs it, so a
cancel can stop it. A preemption (a ``preempted`` cancel naming this node)
stops a task the same way but leaves no trace: the task is handed back to
the balancer, and a preempted task that has not reached this node yet is
handed back on arrival, once.

:class:`ProgressCoalescer` turns a handler's progress calls, as many as it
makes and from any thread, into at most one :class:`TaskProgress` per task
per interval, the latest each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from boson_shared.contract.messages import TaskProgress, TaskSubmitted
from boson_shared.runtime.dedup import SeenIds
from boson_shared.task_control import TaskControl

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
"""At most one progress report per task this often (about twice a second)."""
PROGRESS_CLOSE_S = 2.0
"""How long a stop waits for progress reports still being published: they are
news, not worth the rest of the stop's grace (a publish may wait up to its
confirm timeout)."""


@dataclass
class Running:
    """A task held here: its control, and the asyncio task that waits for a slot and runs it."""

    control: TaskControl
    run: asyncio.Future[Any]


class Cancels:
    """Cancelled ids remembered (bounded) and the tasks a cancel can stop."""

    def __init__(self, memory: int) -> None:
        self.remembered = SeenIds(memory)
        self.running: dict[str, Running] = {}
        self.stopped = 0
        """Tasks stopped while running or waiting for a slot."""
        self.dropped = 0
        """Tasks that arrived already cancelled and never started."""
        self.preempting: set[str] = set()
        """Tasks stopped by a preemption, until their handlers hand them back."""
        self.preempt_on_arrival: dict[str, None] = {}
        """Preempted before they arrived here (an ordered set, bounded)."""
        self.memory = memory
        self.preempted = 0
        """Tasks handed back to the balancer."""

    def remember(self, task_id: str) -> None:
        if task_id not in self.remembered:
            self.remembered.add(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.remembered

    def preempt(self, task_id: str) -> None:
        """Stop a task for a preemption (never remembered as cancelled)."""
        if self.stop(task_id):
            self.preempting.add(task_id)
        elif task_id not in self.running:
            self.preempt_on_arrival[task_id] = None
            while len(self.preempt_on_arrival) > self.memory:
                del self.preempt_on_arrival[next(iter(self.preempt_on_arrival))]

    def was_preempted(self, task_id: str) -> bool:
        """Whether the task was stopped (or is to be, on arrival) by a preemption; once."""
        if task_id in self.preempting:
            self.preempting.discard(task_id)
            return True
        if task_id in self.preempt_on_arrival:
            del self.preempt_on_arrival[task_id]
            return True
        return False

    def stop(self, task_id: str) -> bool | None:
        """Stop a task held here: True if stopped, False if it had already finished
        running (its result stands), None if it is not held here."""
        running = self.running.get(task_id)
        if running is None:
            return None
        if running.run.done():
            return False
        running.control.cancel()
        running.run.cancel()
        self.stopped += 1
        return True


class _Sink:
    """One task's progress sink: any thread may call it; the loop sees the latest only."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[float, str], None],
    ) -> None:
        self._loop = loop
        self._deliver = deliver
        self._lock = threading.Lock()
        self._latest: tuple[float, str] | None = None
        self._scheduled = False

    def __call__(self, fraction: float, message: str) -> None:
        with self._lock:
            self._latest = (fraction, message)
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the executor stops
            self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
            self._scheduled = False
        if latest is not None:
            self._deliver(*latest)


class ProgressCoalescer:
    """Per task, at most one progress report per ``interval_s``, the latest each time."""

    def __init__(
        self,
        publish: Callable[[TaskProgress], Awaitable[None]],
        *,
        node_id: str,
        interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self.node_id = node_id
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._pending: dict[str, TaskProgress] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._latest_send: dict[str, asyncio.Task[None]] = {}
        self.sent = 0
        self.reported = 0

    def control_for(self, task: TaskSubmitted) -> TaskControl:
        """A fresh control whose progress reports reach ``task``'s submitter and record."""
        loop = asyncio.get_running_loop()
        return TaskControl(
            _Sink(loop, lambda fraction, message: self.report(task, fraction, message))
        )

    def report(self, task: TaskSubmitted, fraction: float, message: str) -> None:
        """On the loop: send now if the interval has passed, else keep it as the latest."""
        self.reported += 1
        progress = TaskProgress(
            task_id=task.task_id,
            fraction=fraction,
            message=message,
            reply_to=task.reply_to,
            node_id=self.node_id,
        )
        now = self._clock()
        last = self._last.get(task.task_id)
        if last is None or now - last >= self.interval_s:
            # A held-back report is older than this one: it must not follow it.
            timer = self._timers.pop(task.task_id, None)
            if timer is not None:
                timer.cancel()
            self._pending.pop(task.task_id, None)
            self._send(progress, now)
            return
        self._pending[task.task_id] = progress
        if task.task_id not in self._timers:
            delay = last + self.interval_s - now
            loop = asyncio.get_running_loop()
            self._timers[task.task_id] = loop.call_later(delay, self._flush, task.task_id)

    def finish(self, task_id: str) -> None:
        """The task ended: a report still held back goes now, ahead of its result."""
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        progress = self._pending.pop(task_id, None)
        if progress is not None:
            self._send(progress, self._clock())
        self._last.pop(task_id, None)

    async def settle(self, task_id: str) -> None:
        """Wait until the task's last report is published, so that it precedes the result."""
        sending = self._latest_send.pop(task_id, None)
        if sending is not None:
            await asyncio.shield(sending)

    def _flush(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        progress = self._pending.pop(task_id, None)
        if progress is not None:
            self._send(progress, self._clock())

    def _send(self, progress: TaskProgress, now: float) -> None:
        self._last[progress.task_id] = now
        self.sent += 1
        sending = asyncio.ensure_future(self._publish_quietly(progress))
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        self._latest_send[progress.task_id] = sending

        def forget(done: asyncio.Task[None], task_id: str = progress.task_id) -> None:
            if self._latest_send.get(task_id) is done:
                del self._latest_send[task_id]

        sending.add_done_callback(forget)

    async def _publish_quietly(self, progress: TaskProgress) -> None:
        try:
            await self._publish(progress)
        except Exception as error:  # progress is news: a lost report is not a failure
            logger.debug("progress of %s not published: %s", progress.task_id, error)

    async def close(self, *, timeout: float = PROGRESS_CLOSE_S) -> None:
        """Drop reports held back; wait up to ``timeout`` seconds for those being
        published, then drop them too."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._pending.clear()
        if not self._sending:
            return
        _, unsent = await asyncio.wait(set(self._sending), timeout=timeout)
        if unsent:
            logger.warning(
                "%d progress reports not published within %.1fs of the stop; dropped",
                len(unsent),
                timeout,
            )
            for sending in unsent:
                sending.cancel()
            await asyncio.wait(unsent, timeout=timeout)


__all__ = ["PROGRESS_INTERVAL_S", "Cancels", "ProgressCoalescer", "Running"]
