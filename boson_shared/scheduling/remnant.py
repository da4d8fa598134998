"""The ``remnant`` strategy's typical-demand estimate, and the identical-run fast path.

``remnant`` (see :mod:`boson_shared.scheduling.scores`) needs to know what a
*typical* task asks for. :class:`TypicalDemand` keeps the per-dimension
median of the last :data:`WINDOW` placed demands (one row per placed
instance), recomputed once :data:`REFRESH` new ones have come in. The
estimate changes only when :meth:`TypicalDemand.refresh` is called — the
placer calls it at the start of each ``place`` / ``place_batch`` — so within
one call every placement is scored against the same typical demand, and a
batch equals placing its rows one at a time whenever no refresh falls between
them (fewer than :data:`REFRESH` placements). Until the first refresh the
estimate is zero and ``remnant`` scores exactly as ``binpack``.

:func:`place_run` places ``k`` identical demands as ``k`` sequential full
rescores would (any strategy without the sorted index: ``balanced``,
``tetris``, ``remnant``), without doing them: it scores every node once, then
keeps a heap keyed (−score, index) of the ``k`` best nodes (with ties) in
which only the node just chosen is rescored — through the same vectorised
formula on that one row, with its allocation accumulated one demand at a
time, so the choice is bit-for-bit the sequential one.
"""

from __future__ import annotations

import heapq

import numpy as np

from boson_shared.scheduling.scores import (
    Strategy,
    bottleneck,
    fgd_points,
    fgd_row_score,
    fgd_typical,
    raw_scores,
)
from boson_shared.scheduling.table import NDIM, FloatArray, NodeTable

WINDOW = 65_536
"""Placed demands the typical-demand median looks back over."""
REFRESH = 4_096
"""New placed demands that make :meth:`TypicalDemand.refresh` recompute the median."""
QUANTILES = (0.25, 0.5, 0.75)
"""The demand points :class:`LongRunDemand` offers ``binpack-fgd``: per-dimension quantiles.

Judging a remnant against several task sizes, not the median alone, is what
fragmentation gradient descent does (Weng et al., ATC 2023: the expected
stranding over the task distribution). The median an online estimate has
early on is not the one the whole run ends with (on the Alibaba trace
0.0054–0.0081 for the first 1,500 s against 0.0085 for the window), and a
remnant just above the early median was left where the later one could not
use it. With the quartiles around it, the 90 % load replay strands 0.00098
of memory instead of 0.00117 (see ``benchmarks/trace_quality.py``); more
points (5, 7, 9 from p10 to p90) strand about as little and cost more.
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
    placement on, not after the first 4,096.
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

        The balancer observes every hold one at a time; past the window the
        array path costs ~11 µs a call, half a busy balancer's time per task.
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


def place_run(
    table: NodeTable, strategy: Strategy, demand: FloatArray, k: int, typical: FloatArray
) -> list[int]:
    """Place up to ``k`` copies of ``demand`` by full-rescore rules; commits, returns the rows.

    Fewer than ``k`` rows come back when the cluster runs out of room.
    """
    cap = table.capacity
    free = cap - table.allocated
    fits = table.alive & np.all(free >= demand, axis=1)
    feasible = np.flatnonzero(fits)
    if feasible.size == 0 or k <= 0:
        return []
    score = raw_scores(table, strategy, demand, typical)
    cost = -score[feasible]
    if k < feasible.size:
        # k placements choose among the k best nodes at most: until each of the
        # k best has been chosen once (its score only changes then), one of
        # them outranks every other node. Keeping the ties at the k-th cost
        # keeps that set whatever the index tie-break; the heap is k long, not n.
        keep = cost <= np.partition(cost, k - 1)[k - 1]
        cost, feasible = cost[keep], feasible[keep]
    heap = list(zip(cost.tolist(), feasible.tolist(), strict=True))
    heapq.heapify(heap)
    if strategy == "binpack-fgd":
        return _place_run_fgd(table, demand, k, typical, heap)
    # A scratch table of one row: the chosen node rescored with the very formula above.
    one = NodeTable(1)
    one.upsert("row", np.zeros(NDIM))
    alloc: dict[int, FloatArray] = {}
    chosen: list[int] = []
    while heap and len(chosen) < k:
        i = heap[0][1]
        row = alloc.get(i)
        if row is None:
            row = alloc[i] = table.allocated[i].copy()
        chosen.append(i)
        row += demand
        if not np.all(cap[i] - row >= demand):
            heapq.heappop(heap)
            continue
        one.capacity[0] = cap[i]
        one.allocated[0] = row
        value = float(raw_scores(one, strategy, demand, typical)[0])
        heapq.heapreplace(heap, (-value, i))
    for i, row in alloc.items():
        table.set_allocated(table.node_ids[i], row)
    return chosen


def _place_run_fgd(
    table: NodeTable,
    demand: FloatArray,
    k: int,
    typical: FloatArray,
    heap: list[tuple[float, int]],
) -> list[int]:
    """:func:`place_run` for ``binpack-fgd``: the chosen node rescored in plain floats."""
    cap = table.capacity
    typ = fgd_typical(demand, typical)
    b = bottleneck(cap, typ)  # of the whole table, as the vectorised scores use
    d = demand.tolist()
    t = fgd_points(np.atleast_2d(typ).tolist(), b)
    alloc: dict[int, list[float]] = {}
    caps: dict[int, list[float]] = {}
    chosen: list[int] = []
    while heap and len(chosen) < k:
        i = heap[0][1]
        row = alloc.get(i)
        if row is None:
            row = alloc[i] = table.allocated[i].tolist()
            caps[i] = cap[i].tolist()
        c = caps[i]
        chosen.append(i)
        # The same accumulation as the numpy row (``row += demand``), element by element.
        row[0] += d[0]
        row[1] += d[1]
        row[2] += d[2]
        if not (c[0] - row[0] >= d[0] and c[1] - row[1] >= d[1] and c[2] - row[2] >= d[2]):
            heapq.heappop(heap)
            continue
        heapq.heapreplace(heap, (-fgd_row_score(c, row, d, t, b), i))
    for i, row in alloc.items():
        table.set_allocated(table.node_ids[i], np.asarray(row, dtype=np.float64))
    return chosen


__all__ = ["QUANTILES", "REFRESH", "WINDOW", "LongRunDemand", "TypicalDemand", "place_run"]
