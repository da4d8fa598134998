"""The ``binpack-fgd`` scores of a table with GPU devices, kept current incrementally.

On a table with GPU devices whose bottleneck is the GPU, ``binpack-fgd``
scores a node by how much a placement changes Weng et al.'s per-GPU
fragmentation (:func:`~boson_shared.scheduling.fgd_device_scoring.device_fgd_scores`).
The fragmentation *before* depends only on the node's books and the typical
demand points, so the index keeps it per node and recomputes it only for the
rows the table reports changed (the placement just made, a release, a
snapshot), and for every node when the points move. What a demand does to a
node is scored in compiled loops (:mod:`.fgd_device_kernels`), which skip at
once the nodes it does not fit:

* a demand without a ``gpu_model`` constraint gets a *slot*: its score on
  every node, kept current by rescoring only the rows changed since the slot
  was last used (a log of the changed rows the table reported), then a scan
  for the best; the slots (at most :data:`SLOT_BUDGET` scores in all) go to
  the demands used most recently;
* a demand with a constraint (or whose slot is new) is scored on every node.

Scores, the fit rule and the device choice are the reference's, bit for bit
(the property tests check), so the placer's choice of node and devices is the
full rescore's.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling import fgd_device_kernels as _k
from boson_shared.scheduling.fgd_device_scoring import GPU
from boson_shared.scheduling.fgd_scoring import FGD_WEIGHT, bottleneck
from boson_shared.scheduling.once import Once
from boson_shared.scheduling.scores import weights
from boson_shared.scheduling.table import FloatArray, NodeTable

IntArray = NDArray[np.int64]

SLOT_BUDGET = 1 << 22
"""Scores all slots together may hold (8 bytes each): 32 MiB."""
_MAX_SLOTS = 256
_LOG_MIN = 1 << 16
"""Changed rows the log holds at least before it wraps (and every slot rebuilds)."""


def _load_kernels() -> None:
    """Load (or, on a fresh install, compile) the kernels now: place on a tiny index."""
    table = NodeTable(2)
    table.upsert("a", (2.0, 2.0, 2.0))
    table.upsert("b", (2.0, 2.0, 1.0))
    index = DeviceFgdIndex.__new__(DeviceFgdIndex)
    index._setup(table)
    points = np.full((2, 3), 0.5)
    for _ in range(2):  # a new slot, then catching up
        index.scores(np.array([0.5, 0.5, 0.5]), points, None)
        table.allocate(0, (0.5, 0.5, 0.5))
    index.scores(np.array([0.5, 0.5, 1.0]), points, frozenset({""}))


warm_up = Once(_load_kernels)
"""Readies this module's kernels (:func:`_load_kernels`) once per process, from any thread."""


def is_warm() -> bool:
    """Whether this process has its kernels ready (:data:`warm_up` has returned)."""
    return warm_up.done


class DeviceFgdIndex:
    """``binpack-fgd`` scores over one table with GPU devices, kept current incrementally."""

    def __init__(self, table: NodeTable) -> None:
        warm_up()
        self._setup(table)

    def _setup(self, table: NodeTable) -> None:
        self._table = table
        self.watcher = table.watch()
        self._n = -1
        self._g = -1
        self._points: FloatArray = np.zeros((0, 3))
        self._points_key = b""
        self._w: FloatArray = np.zeros((0, 3))
        self._cap: FloatArray = np.zeros((0, 3))
        self._serves = False
        self._frag0: FloatArray = np.zeros(0)
        self._free_row: IntArray = np.zeros(0, dtype=np.int64)
        self._chosen: IntArray = np.zeros(0, dtype=np.int64)
        self._no_q: NDArray[np.bool_] = np.zeros((1, 1), dtype=np.bool_)
        self._pn: IntArray = np.zeros(0, dtype=np.int64)
        self._pper: IntArray = np.zeros(0, dtype=np.int64)
        self._pc: FloatArray = np.zeros(0)
        self._pm: FloatArray = np.zeros(0)
        self._slots: dict[tuple[float, float, float], int] = {}
        self._scores: FloatArray = np.empty((0, 0))
        self._valid: NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self._seen_upto: IntArray = np.zeros(0, dtype=np.int64)
        self._last_used: IntArray = np.zeros(0, dtype=np.int64)
        self._calls = 0
        self._log: IntArray = np.zeros(0, dtype=np.int64)
        self._logged = 0
        self._stamp: IntArray = np.zeros(0, dtype=np.int64)
        self._tick = 0

    def serves(self, points: FloatArray) -> bool:
        """Whether the table's ``binpack-fgd`` against ``points`` is per device (its bottleneck
        the GPU on a table with devices): what this index scores. Catches up first."""
        self.sync(points)
        return self._serves

    # -- keeping current -------------------------------------------------

    def _rebuild(self, points: FloatArray) -> None:
        table = self._table
        self.watcher.dirty.clear()
        n = len(table)
        g = table.device_capacity.shape[1]
        self._n, self._g = n, g
        self._points = points.copy()
        self._points_key = points.tobytes()
        shapes = [_dev.shape(_dev.to_milli(p[GPU])) for p in points.tolist()]
        self._pn = np.array([s[0] for s in shapes], dtype=np.int64)
        self._pper = np.array([s[1] for s in shapes], dtype=np.int64)
        self._pc = np.ascontiguousarray(points[:, 0])
        self._pm = np.ascontiguousarray(points[:, 1])
        self._w = np.ascontiguousarray(weights(table.capacity))
        self._cap = table.capacity.copy()
        self._serves = table.has_devices and bottleneck(self._cap, points) == GPU
        self._frag0 = np.zeros(n)
        self._free_row = np.zeros(max(g, 1), dtype=np.int64)
        self._chosen = np.zeros(max(g, 1), dtype=np.int64)
        self._refresh(np.arange(n, dtype=np.int64))
        self._logged = 0
        if self._scores.shape[1] == n:  # same nodes: the slots keep their demands
            self._valid[:] = False
            return
        nslots = max(1, min(_MAX_SLOTS, SLOT_BUDGET // max(n, 1)))
        self._slots = {}
        self._scores = np.empty((nslots, n))
        self._valid = np.zeros(nslots, dtype=np.bool_)
        self._seen_upto = np.zeros(nslots, dtype=np.int64)
        self._last_used = np.full(nslots, -1, dtype=np.int64)
        self._log = np.zeros(max(_LOG_MIN, 4 * n), dtype=np.int64)
        self._stamp = np.zeros(n, dtype=np.int64)

    def _refresh(self, rows: IntArray) -> None:
        table = self._table
        _k.refresh_rows(
            rows, table.capacity, table.allocated, table.device_capacity,
            table.device_allocated, self._frag0, self._free_row,
            self._pn, self._pper, self._pc, self._pm,
        )  # fmt: skip

    def sync(self, points: FloatArray) -> None:
        """Catch up with the table and the typical ``points`` (``(k, 3)``, not all zero)."""
        table = self._table
        dirty = self.watcher.dirty
        if (
            len(table) != self._n
            or table.device_capacity.shape[1] != self._g
            or points.shape != self._points.shape
            or points.tobytes() != self._points_key
        ):
            self._rebuild(points)
            return
        if not dirty:
            return
        rows = np.fromiter(sorted(dirty), dtype=np.int64, count=len(dirty))
        dirty.clear()
        cap = table.capacity[rows]
        if not np.array_equal(cap, self._cap[rows]):  # weights and bottleneck move with it
            self._cap[rows] = cap
            self._w[rows] = weights(cap)
            self._serves = table.has_devices and bottleneck(self._cap, points) == GPU
        self._refresh(rows)
        # Logged: each slot rescores them when next used.
        if self._logged + rows.size > self._log.shape[0]:
            self._valid[:] = False
            self._logged = 0
            if rows.size > self._log.shape[0]:
                return
        self._log[self._logged : self._logged + rows.size] = rows
        self._logged += rows.size

    # -- scoring ---------------------------------------------------------

    def scores(
        self, demand: FloatArray, points: FloatArray, models: frozenset[str] | None
    ) -> tuple[FloatArray, int]:
        """Every node's score for ``demand`` (``nan`` where it does not fit), and the best row.

        What :func:`~boson_shared.scheduling.scores.scores` gives ``binpack-fgd``
        against ``points`` when :meth:`serves` them, bit for bit; the best row
        is :func:`~boson_shared.scheduling.scores.best`'s (-1: none fits).
        """
        if not self.serves(points):
            raise ValueError("binpack-fgd against these points is not per device")
        table = self._table
        n, per = _dev.shape(_dev.to_milli(demand[GPU]))
        r0, r1, r2 = demand.tolist()
        if models is not None and n > 0:  # the constraint matters: scored afresh
            out = np.empty(len(table))
            best = self._score_all(r0, r1, r2, n, per, table.qualifying(models), True, out)
            return out, best
        self._calls += 1
        key = (r0, r1, r2)
        c = self._slots.get(key)
        if c is None:
            c = self._take_slot(key)
        s = self._scores[c]
        self._last_used[c] = self._calls
        if not self._valid[c]:
            best = self._score_all(r0, r1, r2, n, per, self._no_q, False, s)
            self._valid[c] = True
        else:
            self._tick += 1
            best = _k.catch_up(
                self._log, int(self._seen_upto[c]), self._logged, self._stamp, self._tick,
                r0, r1, r2, n, per, self._no_q,
                table.capacity, table.allocated, table.alive, self._w,
                table.device_capacity, table.device_allocated, self._frag0,
                self._pn, self._pper, self._pc, self._pm, FGD_WEIGHT,
                self._free_row, self._chosen, s,
            )  # fmt: skip
        self._seen_upto[c] = self._logged
        return s.copy(), int(best)

    def _score_all(
        self,
        r0: float,
        r1: float,
        r2: float,
        n: int,
        per: int,
        q: NDArray[np.bool_],
        use_q: bool,
        out: FloatArray,
    ) -> int:
        table = self._table
        best = _k.score_all(
            r0, r1, r2, n, per, q, use_q,
            table.capacity, table.allocated, table.alive, self._w,
            table.device_capacity, table.device_allocated, self._frag0,
            self._pn, self._pper, self._pc, self._pm, FGD_WEIGHT,
            self._free_row, self._chosen, out,
        )  # fmt: skip
        return int(best)

    def _take_slot(self, key: tuple[float, float, float]) -> int:
        """A slot for ``key``: a free one, else the one used least recently (invalid)."""
        c = int(self._last_used.argmin())
        for old, slot in self._slots.items():
            if slot == c:
                del self._slots[old]
                break
        self._slots[key] = c
        self._valid[c] = False
        return c


__all__ = ["SLOT_BUDGET", "DeviceFgdIndex", "is_warm", "warm_up"]
