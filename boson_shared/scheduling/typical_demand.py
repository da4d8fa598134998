"""What a typical task asks for, learnt online from placed demands.

``remnant`` and ``binpack-fgd`` (see :mod:`boson_shared.scheduling.scores`)
judge a node's leftover capacity against a *typical* demand.
:class:`TypicalDemand` keeps the per-dimension median of the last
:data:`WINDOW` placed demands (one row per placed instance), recomputed once
:data:`REFRESH` new ones have come in. The estimate changes only when
:meth:`TypicalDemand.refresh` is called — the placer calls it at the start of
each ``place`` / ``place_batch`` — so within one call every placement is
scored against the same typical demand, and a batch equals placing its rows
one at a time whenever no refresh falls between them (fewer than
:data:`REFRESH` placements). Until the first refresh the estimate is zero and
``remnant`` scores exactly as ``binpack``.

:class:`LongRunDemand` is ``binpack-fgd``'s (and the balancer's) estimate:
a reservoir sample of every placed demand, with its quartiles.
"""

from __future__ import annotations

import numpy as np

from boson_shared.scheduling.table import NDIM, FloatArray

WINDOW = 65_536
"""Placed demands the typical-demand median looks back over."""
REFRESH = 4_096
"""New placed demands that make :meth:`TypicalDemand.refresh` recompute the median."""
QUANTILES = (0.25, 0.5, 0.75)
"""The demand points :class:`LongRunDemand` offers ``binpack-fgd``: per-dimension quantiles.

Judging a remnant against several task sizes, not the median alone, is what
fragmentation gradient descent does (Weng et al., ATC 2023: the expected
stranding over the task distribution). The median an online estimate has
early on is not the one the whole run ends with, and a remnant just above
the early median would be left where the later one could not use it; the
quartiles around the median cover that drift. More points strand about as
little and cost more per score.
"""


class TypicalDemand:
    """Per-dimension median of recently placed demands (see the module docstring)."""

    def __init__(self, window: int = WINDOW, refresh_every: int = REFRESH) -> None:
        self._buf = np.zeros((window, NDIM))
        self._seen = 0
        self._fresh = 0
        self._every = refresh_every
        self.value: FloatArray = np.zeros(NDIM)
        self.points: FloatArray = np.zeros((1, NDIM))
        """The estimate as demand points ``(k, 3)``: here the one median."""

    def observe(self, demand: FloatArray, count: int = 1) -> None:
        """Record ``count`` placed instances of ``demand``."""
        size = self._buf.shape[0]
        n = min(count, size)
        rows = (self._seen + np.arange(n)) % size
        self._buf[rows] = demand
        self._seen += count
        self._fresh += count

    def refresh(self) -> None:
        """Recompute the median if enough new demands came in."""
        if self._fresh < self._every:
            return
        self._fresh = 0
        filled = min(self._seen, self._buf.shape[0])
        self.value = np.median(self._buf[:filled], axis=0)
        self.points = self.value[None, :]


class LongRunDemand(TypicalDemand):
    """Per-dimension median and :data:`QUANTILES` of *every* placed demand (``binpack-fgd``'s).

    A uniform reservoir sample of :data:`WINDOW` placed instances (Vitter's
    algorithm R, seeded: deterministic) instead of the last ones, so one
    long run of a single task shape does not swing it; and the median is
    recomputed whenever the placements seen have doubled since the last
    refresh, then every :data:`REFRESH` — an estimate from the first
    placement on, not after the first :data:`REFRESH`.
    """

    def __init__(self, window: int = WINDOW, refresh_every: int = REFRESH, seed: int = 0) -> None:
        super().__init__(window, refresh_every)
        self._rng = np.random.default_rng(seed)
        self.points = np.zeros((len(QUANTILES), NDIM))
        """The sample's per-dimension :data:`QUANTILES`, ``(k, 3)``: ``binpack-fgd``'s typical."""

    def observe(self, demand: FloatArray, count: int = 1) -> None:
        size = self._buf.shape[0]
        if count == 1:
            self._observe_one(demand, size)
            return
        if count <= 0:
            return
        first = self._seen
        direct = max(0, min(count, size - first))
        if direct:
            self._buf[first : first + direct] = demand
        rest = count - direct
        if rest:
            # Instance j (0-based, j >= size) replaces a random slot with probability size / (j+1).
            j = np.arange(first + direct, first + count)
            slot = (self._rng.random(rest) * (j + 1)).astype(np.int64)
            hit = slot[slot < size]
            self._buf[hit] = demand
        self._seen += count
        self._fresh += count

    def _observe_one(self, demand: FloatArray, size: int) -> None:
        """``observe(demand, 1)`` without the arrays: the same draw, the same slot.

        The balancer observes every hold one at a time, so this is on its hot
        path; the array path's set-up would dominate a call for one instance.
        """
        j = self._seen
        if j < size:
            self._buf[j] = demand
        else:
            slot = int(self._rng.random() * (j + 1))
            if slot < size:
                self._buf[slot] = demand
        self._seen += 1
        self._fresh += 1

    def refresh(self) -> None:
        if self._fresh == 0 or self._fresh < min(self._every, self._seen - self._fresh):
            return
        self._fresh = 0
        filled = min(self._seen, self._buf.shape[0])
        self.value = np.median(self._buf[:filled], axis=0)
        self.points = np.quantile(self._buf[:filled], QUANTILES, axis=0)


__all__ = ["QUANTILES", "REFRESH", "WINDOW", "LongRunDemand", "TypicalDemand"]
