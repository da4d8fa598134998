"""The monitor's loop hands the GIL to the dashboard's thread while it works through messages.

The dashboard serves from a thread of the monitor's process, so the two
threads share one GIL. CPython's switching should give a waiting thread the
GIL within a switch interval (5 ms), but a waiter restarts that wait every
time the holder lets the GIL go and takes it back before the waiter runs —
and the monitor's asyncio loop does that at every turn (its ``epoll_wait``
releases the GIL for a few microseconds). So while the monitor works through
a burst of messages (a thousand nodes' heartbeats arriving together), the
dashboard's thread can wait for the GIL for the whole burst: the requests in
flight stall together, for a tenth of a second and more.

:class:`GilTurns` makes the monitor's loop give way explicitly: called once
per message, it sleeps for :data:`PAUSE_S` (``time.sleep`` releases the
GIL, and the waiting thread takes it) once :data:`SLICE_S` has passed since
its last pause. The monitor's loop is blocked for that pause, which delays
its messages by 2 % of a burst; it uses no CPU. Without the
dashboard nothing waits for the GIL, and the monitor makes no ``GilTurns``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SLICE_S = 0.005
"""The most the monitor's loop runs messages before it gives the GIL away: CPython's
switch interval, the turn a waiting thread would get if its wait were not restarted."""
PAUSE_S = 0.0001
"""How long it gives it away: long enough for a waiting thread to wake and take it."""


class GilTurns:
    """A pause of ``pause_s`` at most every ``slice_s``, taken between two messages."""

    def __init__(
        self,
        *,
        slice_s: float = SLICE_S,
        pause_s: float = PAUSE_S,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.slice_s = slice_s
        self.pause_s = pause_s
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self.pauses = 0
        """How many pauses it took (for tests and debugging)."""

    def turn(self) -> None:
        """Between two messages: give the GIL away if the last pause is a slice ago."""
        if self._clock() - self._last < self.slice_s:
            return
        self._sleep(self.pause_s)
        self.pauses += 1
        self._last = self._clock()


__all__ = ["PAUSE_S", "SLICE_S", "GilTurns"]
