"""End-aware placement: long work kept off the large GPU nodes that are to free whole.

A node frees entirely only when the last of its work ends, and a task that
needs a whole large node (all of an 8-GPU node's devices) waits for that. So
when a placement knows when its work is expected to end, the placer also
weighs each node's *horizon*, the latest expected end of the work placed on
it (:class:`NodeHorizon`):

* **Smallest node for long work.** Work expected to run longer than
  :data:`PROTECT_S` goes only to the smallest of the nodes that fit it
  (fewest GPUs; the strategy chooses among those): a long small task on a
  large node keeps that node from freeing whole for as long as it runs.
* **The last large node.** Such work, when a smaller node could hold it,
  does not take the last of the nodes with the most GPUs expected to free
  within :data:`PROTECT_S` (when none will, the one expected to free first),
  so work only those nodes can hold finds one freeing soon — unless it has
  already waited :data:`PROTECT_S` itself: the bar delays it for a bounded
  time, never for good (:meth:`NodeHorizon.barred`).

Work expected to end sooner is left to the strategy alone. The horizon only
grows while a node runs: work ends no later than expected (the simulator's
durations are exact), so the latest expected end placed is the latest end
still running. A node that fails loses its work: its horizon is cleared.

The simulator sets it with known durations (``boson/simulation/engine.py``);
the live scheduler with estimated ones, each handler's recent run times
(``boson_services/scheduler/end_aware.py``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

PROTECT_S: Final = 86_400.0
"""Work expected to run longer than this is long: it goes to the smallest nodes that
fit, and, while it has waited less than this, never takes the last of the largest GPU
nodes expected to free within it (module docstring)."""


class NodeHorizon:
    """Per node row, the latest expected end of the work placed on it."""

    def __init__(self, up: NDArray[np.bool_] | None = None) -> None:
        self._until: NDArray[np.float64] = np.zeros(0)
        self.up = up
        """The nodes that run, when the caller knows better than the table's
        ``alive`` (which a placement may close for a moment): counted as the
        largest nodes to keep one free."""

    def until(self, n: int) -> NDArray[np.float64]:
        """The horizons of rows ``0..n-1`` (``-inf``: nothing placed yet)."""
        if self._until.shape[0] < n:
            grown = np.full(max(n, 2 * self._until.shape[0]), -np.inf)
            grown[: self._until.shape[0]] = self._until
            self._until = grown
        return self._until[:n]

    def extend(self, row: int, end: float) -> None:
        """Work expected to end at ``end`` was placed on ``row``."""
        until = self.until(row + 1)
        until[row] = max(until[row], end)

    def clear(self, row: int) -> None:
        """``row``'s work is gone (its node failed)."""
        self.until(row + 1)[row] = -np.inf

    def barred(
        self,
        demand: NDArray[np.float64],
        end: float,
        now: float,
        capacity: NDArray[np.float64],
        alive: NDArray[np.bool_],
        waited: float = 0.0,
    ) -> NDArray[np.bool_]:
        """The nodes work of ``demand`` ending at ``end`` may not take (module docstring).

        ``capacity``: each node's ``(cpu, memory, gpu)``. Barred: the last of
        the nodes with the most GPUs expected to free within
        :data:`PROTECT_S`, for work expected to run longer than that which
        a smaller node could hold and that has ``waited`` less than that
        (the bar delays it for a bounded time, never for good).
        """
        size = capacity[:, 2]
        until = self.until(size.shape[0])
        barred = np.zeros(size.shape[0], dtype=np.bool_)
        if self.up is not None and self.up.shape[0] == size.shape[0]:
            alive = self.up
        if end - now <= PROTECT_S or waited >= PROTECT_S or not alive.any():
            return barred
        large = alive & (size > 0) & (size == size[alive].max())
        smaller = alive & ~large
        if not np.any(np.all(capacity[smaller] >= demand, axis=1)):
            return barred  # only the largest nodes hold it
        soon = large & (until <= now + PROTECT_S)
        if int(large.sum()) > 1 and int(soon.sum()) <= 1:
            # The one expected to free first, unless the work ends before it frees anyway.
            first = int(np.flatnonzero(large)[np.argmin(until[large])])
            barred[first] = end > until[first]
        return barred

    def candidates(
        self,
        fits: NDArray[np.bool_],
        end: float,
        now: float,
        demand: NDArray[np.float64] | None = None,
        capacity: NDArray[np.float64] | None = None,
        alive: NDArray[np.bool_] | None = None,
        waited: float = 0.0,
    ) -> NDArray[np.bool_]:
        """Of the nodes that fit, those work ending at ``end`` may take (module docstring).

        Without ``demand``, ``capacity`` and ``alive``: all of them.
        """
        if demand is None or capacity is None or alive is None or end - now <= PROTECT_S:
            return fits
        keep = fits & ~self.barred(demand, end, now, capacity, alive, waited)
        if keep.any():
            size = capacity[:, 2]
            keep &= size <= size[keep].min()
        return np.asarray(keep)


__all__ = ["PROTECT_S", "NodeHorizon"]
