"""A task's ``started`` event for the task record, held back for a moment.

Most tasks are short: a start sent on its own costs a publish, a pass
through the record's quorum queue and a decode in the monitor, only to be
followed by the result a few milliseconds later. So the executor holds each
start for ``record_start_hold_ms``. A task still running then has its start
sent as before (the record shows it running while it runs); a task that ends
sooner withdraws it, and its result carries ``started_at`` instead — the
monitor records the same start from it (:func:`boson_shared.record.merge.expand`).

Either the start leaves on its own or the result carries it, never both:
both happen on the executor's event loop, the timer's send and the
withdrawal exclude each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from boson_shared.contract.messages import TaskEvent

Reporter = Callable[[TaskEvent], Awaitable[None]]


class StartReport:
    """One run's ``started`` event: sent after ``hold_s`` unless withdrawn first."""

    def __init__(self, event: TaskEvent, report: Reporter, hold_s: float) -> None:
        self.event = event
        self._report = report
        self._sent: asyncio.Future[None] | None = None
        self._withdrawn = False
        self._timer: asyncio.TimerHandle | None = None
        if hold_s > 0:
            self._timer = asyncio.get_running_loop().call_later(hold_s, self._on_timer)
        else:
            self.send()

    def _on_timer(self) -> None:
        self._timer = None
        self.send()

    def send(self) -> asyncio.Future[None] | None:
        """Publish the start now if it has not left yet; its confirm (None: withdrawn)."""
        if self._withdrawn:
            return None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sent is None:
            self._sent = asyncio.ensure_future(self._report(self.event))
        return self._sent

    def withdraw(self) -> float | None:
        """Never send the start if it has not left yet, and return its time for
        the result to carry; None if it has left already (await :meth:`send`)."""
        if self._sent is not None:
            return None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._withdrawn = True
        return self.event.at


__all__ = ["Reporter", "StartReport"]
