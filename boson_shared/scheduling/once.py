"""Work done once per process, from whichever thread asks first.

The placement kernels load (or compile) once per process; the in-process
cluster asks from a thread of its own while a placer made on the event loop
may ask too. A second caller waits for the first one's work rather than run
without it, and the work counts as done only once it has returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Once:
    """Calls ``work`` the first time it is called (again after a failure), never after."""

    def __init__(self, work: Callable[[], None]) -> None:
        self._work = work
        self._lock = threading.Lock()
        self.done = False
        """Whether ``work`` has returned (in this process)."""

    def __call__(self) -> None:
        with self._lock:
            if not self.done:
                self._work()
                self.done = True


__all__ = ["Once"]
