"""The incremental index that finds the ``binpack-fgd`` choice without a full rescore.

``binpack-fgd`` (see :mod:`~boson_shared.scheduling.fgd_scoring`) scores a node by
how much a placement changes its stranded bottleneck capacity ``m``. ``m``
before placement depends only on the node's allocation and the typical demand
points, so the index keeps it per node and recomputes it only for the node a
placement changed, for rows the table reports changed by someone else, and
for every node when the points or the bottleneck move. What a demand does to
a node still has to be scored per (demand, node); the index avoids doing it
for every node on every placement in two ways (the loops are in
:mod:`.fgd_kernels`):

* a demand seen before gets a *slot*: its score on every node, kept current
  by rescoring only the nodes placed on since the slot was last used (a log
  of placed rows), with a per-block best so that finding the winner scans
  blocks, not nodes;
* a demand seen for the first time (or too rarely to keep a slot) is scored
  on every node in one vectorised pass, without keeping the scores.

Both compute every score with the reference's operations in its order, and
break ties towards the lowest row, so the choice is bit-for-bit
:func:`~boson_shared.scheduling.scores.choose`'s (the property tests check).
Slots cost ``8 × nodes`` bytes each; their number is capped by
:data:`SLOT_BUDGET`, and when they are all taken they go to the most
frequent demands.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from boson_shared.scheduling import fgd_kernels as _k
from boson_shared.scheduling.fgd_scoring import FGD_WEIGHT, bottleneck
from boson_shared.scheduling.once import Once
from boson_shared.scheduling.scores import weights
from boson_shared.scheduling.table import NDIM, FloatArray, NodeTable

SLOT_BUDGET = 1 << 22
"""Scores all slots together may hold (8 bytes each): 32 MiB."""
_MAX_SLOTS = 1024
_LOG_MIN = 1 << 16
"""Placements the log holds at least before it wraps (and every slot rebuilds)."""
_SEEN_MAX = 1 << 16
"""Demands whose occurrences are counted; past it the count starts over."""

IntArray = NDArray[np.int64]


def _load_kernels() -> None:
    """Load (or, on a fresh install, compile) the kernels now, once per process.

    Compiling takes seconds: better when a service starts than on the first
    placement, while a batch waits.
    """
    table = NodeTable(2)
    table.upsert("a", (2.0, 2.0, 0.0))
    table.upsert("b", (2.0, 2.0, 0.0))
    index = FgdIndex.__new__(FgdIndex)
    index._setup(table)
    demands = np.full((3, NDIM), 0.5)
    index.place(demands, demands[:1], np.empty(3, dtype=np.int64))


warm_up = Once(_load_kernels)
"""Readies this module's kernels (:func:`_load_kernels`) once per process, from any thread."""


def is_warm() -> bool:
    """Whether this process has its kernels ready (:data:`warm_up` has returned)."""
    return warm_up.done


class FgdIndex:
    """``binpack-fgd`` placement over one table, kept current incrementally."""

    def __init__(self, table: NodeTable) -> None:
        warm_up()
        self._setup(table)

    def _setup(self, table: NodeTable) -> None:
        self._table = table
        self.watcher = table.watch()
        self._n = -1
        self._points: FloatArray = np.zeros((0, NDIM))
        self._b = -1
        self._batches = 0
        self._scores: FloatArray = np.empty((0, 0))
        self._block_best: IntArray = np.empty((0, 0), dtype=np.int64)
        self._valid: NDArray[np.bool_] = np.empty(0, dtype=np.bool_)
        self._seen_upto: IntArray = np.empty(0, dtype=np.int64)
        self._last_used: IntArray = np.empty(0, dtype=np.int64)
        self._slot_key: list[tuple[float, ...] | None] = []
        self._slots: dict[tuple[float, ...], int] = {}
        self._seen: dict[tuple[float, ...], int] = {}
        self._uses: IntArray = np.empty(0, dtype=np.int64)
        self._log: IntArray = np.empty(0, dtype=np.int64)
        self._state: IntArray = np.zeros(2, dtype=np.int64)
        self._stamp: IntArray = np.empty(0, dtype=np.int64)

    # -- keeping current -------------------------------------------------

    def _rebuild(self, points: FloatArray, b: int) -> None:
        """Every cache from the table, for these typical points and bottleneck."""
        table = self._table
        n = len(table)
        self.watcher.dirty.clear()
        self._n = n
        self._points = points.copy()
        self._b = b
        others = [d for d in range(NDIM) if d != b]
        self._o1, self._o2 = others
        self._pb = np.ascontiguousarray(points[:, b])
        self._q1 = np.ascontiguousarray(points[:, self._o1])
        self._q2 = np.ascontiguousarray(points[:, self._o2])
        self._shared = np.zeros(points.shape[0], dtype=np.bool_)
        self._shared[1:] = (self._q1[1:] == self._q1[:-1]) & (self._q2[1:] == self._q2[:-1])
        self._w = np.ascontiguousarray(weights(table.capacity))
        self._wt = np.ascontiguousarray(self._w.T)
        self._capb = np.ascontiguousarray(table.capacity[:, b])
        self._free = np.zeros((NDIM, n))
        self._u = np.zeros(n)
        self._m0 = np.zeros(n)
        self._scratch = np.zeros((6, n))
        self._refresh(np.arange(n, dtype=np.int64))
        if self._scores.shape[1] == n:  # same nodes: the slots keep their demands
            self._valid[:] = False
            self._state[0] = 0
            return
        nslots = max(1, min(_MAX_SLOTS, SLOT_BUDGET // max(n, 1)))
        nblocks = max(1, -(-n // _k.BLOCK))
        self._scores = np.empty((nslots, n))
        self._block_best = np.full((nslots, nblocks), -1, dtype=np.int64)
        self._valid = np.zeros(nslots, dtype=np.bool_)
        self._seen_upto = np.zeros(nslots, dtype=np.int64)
        self._last_used = np.full(nslots, -1, dtype=np.int64)
        self._slot_key = [None] * nslots
        self._slots = {}
        self._seen = {}
        self._uses = np.zeros(nslots, dtype=np.int64)
        self._log = np.zeros(max(_LOG_MIN, 4 * n), dtype=np.int64)
        self._state = np.zeros(2, dtype=np.int64)
        self._stamp = np.zeros(n, dtype=np.int64)

    def _refresh(self, rows: IntArray) -> None:
        table = self._table
        _k.refresh_rows(
            rows, table.capacity, table.allocated, self._w, self._free, self._u, self._m0,
            self._pb, self._q1, self._q2, self._shared, self._b, self._o1, self._o2,
        )  # fmt: skip

    def sync(self, points: FloatArray) -> None:
        """Catch up with the table and the typical ``points`` (``(k, 3)``, not all zero)."""
        table = self._table
        dirty = self.watcher.dirty
        same_points = np.array_equal(points, self._points)
        if len(table) == self._n and same_points and not dirty:
            return
        b = bottleneck(table.capacity, points)
        if len(table) != self._n or not same_points or b != self._b:
            self._rebuild(points, b)
            return
        rows = np.fromiter(sorted(dirty), dtype=np.int64, count=len(dirty))
        dirty.clear()
        self._w[rows] = weights(table.capacity[rows])
        self._wt[:, rows] = self._w[rows].T
        self._capb[rows] = table.capacity[rows, self._b]
        self._refresh(rows)
        # Logged like placements: each slot rescores them when next used.
        state, log = self._state, self._log
        if state[0] + rows.size > log.shape[0]:
            self._valid[:] = False
            state[0] = 0
        if rows.size > log.shape[0]:
            return
        log[state[0] : state[0] + rows.size] = rows
        state[0] += rows.size

    # -- placing ---------------------------------------------------------

    def place(self, demands: FloatArray, points: FloatArray, out: IntArray) -> None:
        """Place ``demands`` (``(m, 3)``) in order and allocate them; ``out``: row or -1.

        ``points`` is the typical demand, held for the whole call.
        """
        self.sync(points)
        table = self._table
        slot_of = self._assign_slots(demands)
        _k.place(
            demands, slot_of, out, table.capacity, table.allocated, table.alive,
            self._w, self._wt, self._free, self._u, self._capb, self._m0,
            self._pb, self._q1, self._q2, self._shared,
            self._b, self._o1, self._o2, FGD_WEIGHT,
            self._scores, self._block_best, self._valid, self._seen_upto,
            self._log, self._state, self._stamp, self._scratch,
        )  # fmt: skip
        placed = out[out >= 0]
        if placed.size:
            table._changed_by(np.unique(placed).tolist(), self.watcher)

    def score(self, demand: FloatArray, out: FloatArray) -> None:
        """Every node's score for ``demand`` into ``out`` (``-inf`` where it does not fit).

        The whole-demand pass the slots are built with; call :meth:`sync` first.
        """
        _k.score_all(
            float(demand[0]), float(demand[1]), float(demand[2]),
            self._free, self._u, self._wt, self._capb, self._m0, self._table.alive,
            self._pb, self._q1, self._q2, self._shared, self._b, self._o1, self._o2,
            FGD_WEIGHT, self._scratch, out,
        )  # fmt: skip

    def _assign_slots(self, demands: FloatArray) -> IntArray:
        """Per demand its slot, or -1: scored afresh (seen too rarely to hold a slot)."""
        self._batches += 1
        batch = self._batches
        slots, seen, last_used, uses = self._slots, self._seen, self._last_used, self._uses
        slot_of = np.empty(demands.shape[0], dtype=np.int64)
        for j, row in enumerate(demands.tolist()):
            key = tuple(row)
            c = slots.get(key)
            if c is None:
                count = seen.get(key, 0) + 1
                if count == 1 and len(seen) >= _SEEN_MAX:
                    seen.clear()
                seen[key] = count
                c = -1 if count == 1 else self._new_slot(key, count, batch)
                if c < 0:
                    slot_of[j] = -1
                    continue
            slot_of[j] = c
            last_used[c] = batch
            uses[c] += 1
        return slot_of

    def _new_slot(self, key: tuple[float, ...], count: int, batch: int) -> int:
        """A slot for ``key`` (seen ``count`` times), or -1.

        A free slot if there is one; else the least used slot, but only if
        ``key`` has been seen more often than it was used and it does not
        serve this batch already: when slots are fewer than the demands in
        rotation, they go to the most frequent, not to whichever came last.
        """
        c = int(self._uses.argmin())
        if self._slot_key[c] is not None and (
            self._uses[c] >= count or self._last_used[c] == batch
        ):
            return -1
        old = self._slot_key[c]
        if old is not None:
            del self._slots[old]
        self._slot_key[c] = key
        self._slots[key] = c
        self._uses[c] = count - 1
        self._valid[c] = False
        return c


__all__ = ["SLOT_BUDGET", "FgdIndex", "is_warm", "warm_up"]
