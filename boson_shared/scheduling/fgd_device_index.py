"""The ``binpack-fgd`` scores of a table with GPU devices, kept current incrementally.

On a table with GPU devices whose bottleneck is the GPU, ``binpack-fgd``
scores a node by how much a placement changes Weng et al.'s per-GPU
fragmentation (:func:`~boson_shared.scheduling.scores.device_fgd_scores`).
The fragmentation *before* depends only on the node's books and the typical
demand points, so the index keeps it per node and recomputes it only for the
rows the table reports changed (the placement just made, a release, a
snapshot), and for every node when the points move. What a demand does to a
node is scored in one compiled pass over the nodes
(:mod:`.fgd_device_kernels`), which skips at once the nodes it does not fit.

Scores, the fit rule and the device choice are the reference's, bit for bit
(the property tests check), so the placer's choice of node and devices is the
full rescore's.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling import fgd_device_kernels as _k
from boson_shared.scheduling.scores import FGD_WEIGHT, GPU, bottleneck, weights
from boson_shared.scheduling.table import FloatArray, NodeTable

IntArray = NDArray[np.int64]

_warm = False


def _warm_up() -> None:
    """Load (or, on a fresh install, compile) the kernels now, once per process."""
    global _warm
    if _warm:
        return
    _warm = True
    table = NodeTable(2)
    table.upsert("a", (2.0, 2.0, 2.0))
    table.upsert("b", (2.0, 2.0, 1.0))
    index = DeviceFgdIndex.__new__(DeviceFgdIndex)
    index._setup(table)
    points = np.full((2, 3), 0.5)
    index.scores(np.array([0.5, 0.5, 0.5]), points, None)
    index.scores(np.array([0.5, 0.5, 1.0]), points, frozenset({""}))


class DeviceFgdIndex:
    """``binpack-fgd`` scores over one table with GPU devices, kept current incrementally."""

    def __init__(self, table: NodeTable) -> None:
        _warm_up()
        self._setup(table)

    def _setup(self, table: NodeTable) -> None:
        self._table = table
        self.watcher = table.watch()
        self._n = -1
        self._g = -1
        self._points: FloatArray = np.zeros((0, 3))
        self._w: FloatArray = np.zeros((0, 3))
        self._frag0: FloatArray = np.zeros(0)
        self._free_row: IntArray = np.zeros(0, dtype=np.int64)
        self._chosen: IntArray = np.zeros(0, dtype=np.int64)
        self._no_q: NDArray[np.bool_] = np.zeros((1, 1), dtype=np.bool_)
        self._pn: IntArray = np.zeros(0, dtype=np.int64)
        self._pper: IntArray = np.zeros(0, dtype=np.int64)
        self._pc: FloatArray = np.zeros(0)
        self._pm: FloatArray = np.zeros(0)

    def serves(self, points: FloatArray) -> bool:
        """Whether the table's ``binpack-fgd`` against ``points`` is per device (its bottleneck
        the GPU on a table with devices): what this index scores."""
        table = self._table
        return table.has_devices and bottleneck(table.capacity, points) == GPU

    # -- keeping current -------------------------------------------------

    def _rebuild(self, points: FloatArray) -> None:
        table = self._table
        self.watcher.dirty.clear()
        n = len(table)
        g = table.device_capacity.shape[1]
        self._n, self._g = n, g
        self._points = points.copy()
        shapes = [_dev.shape(_dev.to_milli(p[GPU])) for p in points.tolist()]
        self._pn = np.array([s[0] for s in shapes], dtype=np.int64)
        self._pper = np.array([s[1] for s in shapes], dtype=np.int64)
        self._pc = np.ascontiguousarray(points[:, 0])
        self._pm = np.ascontiguousarray(points[:, 1])
        self._w = np.ascontiguousarray(weights(table.capacity))
        self._frag0 = np.zeros(n)
        self._free_row = np.zeros(max(g, 1), dtype=np.int64)
        self._chosen = np.zeros(max(g, 1), dtype=np.int64)
        self._refresh(np.arange(n, dtype=np.int64))

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
            or not np.array_equal(points, self._points)
        ):
            self._rebuild(points)
            return
        if not dirty:
            return
        rows = np.fromiter(sorted(dirty), dtype=np.int64, count=len(dirty))
        dirty.clear()
        self._w[rows] = weights(table.capacity[rows])
        self._refresh(rows)

    # -- scoring ---------------------------------------------------------

    def scores(
        self, demand: FloatArray, points: FloatArray, models: frozenset[str] | None
    ) -> tuple[FloatArray, int]:
        """Every node's score for ``demand`` (``nan`` where it does not fit), and the best row.

        What :func:`~boson_shared.scheduling.scores.scores` gives ``binpack-fgd``
        against ``points`` when :meth:`serves` them, bit for bit; the best row
        is :func:`~boson_shared.scheduling.scores.best`'s (-1: none fits).
        """
        self.sync(points)
        table = self._table
        n, per = _dev.shape(_dev.to_milli(demand[GPU]))
        use_q = models is not None and n > 0
        q = table.qualifying(models) if use_q else self._no_q
        out = np.empty(len(table))
        r0, r1, r2 = demand.tolist()
        best = _k.score_all(
            r0, r1, r2, n, per, q, use_q,
            table.capacity, table.allocated, table.alive, self._w,
            table.device_capacity, table.device_allocated, self._frag0,
            self._pn, self._pper, self._pc, self._pm, FGD_WEIGHT,
            self._free_row, self._chosen, out,
        )  # fmt: skip
        return out, int(best)


__all__ = ["DeviceFgdIndex"]
