"""End-aware placement: put work where it does not keep a node busy for longer.

A node frees entirely only when the last of its work ends. Work placed on a
node that would otherwise free soon keeps it busy — and a task that needs a
whole node (all of an 8-GPU node's devices) waits for that. So, when a
placement knows when the work is expected to end, each node's *horizon* is
the latest expected end of the work placed on it (:class:`NodeHorizon`), and
the work's *extension* of a node is how far past that horizon (or now, when
the node's work has all ended) the work would run. Among the nodes that fit,
only those whose extension is within :data:`EXTENSION_SLACK` of the work's
expected run time of the smallest extension stay candidates; the strategy's
scores choose among them. Short work thus goes next to long work already
running (it ends before the node would free anyway) rather than onto a free
node, and long work joins the node that is busy longest, so the other nodes
free whole. Where every candidate is extended, only the smallest of them
(fewest GPUs) stay: the large nodes are the ones to keep freeing whole.

The last large node: work expected to run longer than :data:`PROTECT_S`
that a smaller node could hold does not take the last of the nodes with the
most GPUs expected to free within :data:`PROTECT_S` (when none will, the one
expected to free first), so work only those nodes can hold finds one
freeing soon — unless it has already waited :data:`PROTECT_S` itself: the
bar delays it for a bounded time, never for good (:meth:`NodeHorizon.barred`).

The horizon only grows while a node runs: work ends no later than expected
(the simulator's durations are exact), so the latest expected end placed is
the latest end still running. A node that fails loses its work: its horizon
is cleared.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

EXTENSION_SLACK: Final = 0.1
"""How much more than the least extension a candidate may add (share of the run time)."""


PROTECT_S: Final = 86_400.0
"""Work expected to run longer than this, and waiting less than this, never takes the
last of the largest GPU nodes expected to free within it (module docstring)."""


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
        """Of the nodes that fit, those work ending at ``end`` extends least (module docstring).

        With ``demand``, ``capacity`` and ``alive``: never a :meth:`barred` node,
        and where every candidate is extended, only the smallest of them.
        """
        until = self.until(fits.shape[0])
        size = None if capacity is None else capacity[:, 2]
        if demand is not None and capacity is not None and alive is not None:
            fits = fits & ~self.barred(demand, end, now, capacity, alive, waited)
        if not fits.any():
            return fits
        extension = np.maximum(end - np.maximum(until, now), 0.0)
        least = float(extension[fits].min())
        slack = EXTENSION_SLACK * max(end - now, 0.0)
        keep = np.asarray(fits & (extension <= least + slack))
        if least > 0 and size is not None:
            # It keeps some node busy longer whichever it takes: the smallest
            # nodes, so the large ones free whole for work only they can hold.
            keep &= size <= size[keep].min()
        return keep


__all__ = ["EXTENSION_SLACK", "NodeHorizon"]
