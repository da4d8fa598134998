"""The node table: every node's capacity and allocated demand, as numpy arrays.

One row per node, one column per resource (``RESOURCES``). Rows are never
removed — a node that leaves is marked dead and keeps its index — so indices
handed out stay valid for the life of the table, which is what lets the
placement index, reservations and the simulator refer to nodes by integer.

Placement scores *allocated* utilisation (demand held ÷ capacity); measured
utilisation from heartbeats is kept elsewhere (see ``balancing``).

Watchers (the placement index of each :class:`~boson_shared.scheduling.placement.Placer`)
register here and are told which rows changed, so that a placer can keep its
incremental structures in step with changes made by someone else (the
simulator releasing a finished task, a snapshot arriving) without rescanning
the whole table.
"""

from __future__ import annotations

import math
import weakref
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

RESOURCES: Final = ("cpu", "memory", "gpu")
"""The resource dimensions, in column order."""

NDIM: Final = len(RESOURCES)

FloatArray = NDArray[np.float64]

FIT_EPSILON: Final = 1e-9
"""Slack for float round-off when testing whether a demand fits free capacity."""


def as_vector(value: ArrayLike) -> FloatArray:
    """``value`` as a finite, non-negative float64 vector of length ``NDIM``.

    Shorter inputs are padded with zeros, so ``(cpu, memory)`` means no GPU.
    """
    vec = np.asarray(value, dtype=np.float64).reshape(-1)
    if vec.shape[0] > NDIM:
        raise ValueError(f"a resource vector has at most {NDIM} entries, got {vec.shape[0]}")
    if vec.shape[0] < NDIM:
        vec = np.concatenate([vec, np.zeros(NDIM - vec.shape[0])])
    # Three numbers: checked in Python, a fifth of what np.all/np.any cost on
    # arrays this small (this runs for every task in the scheduler).
    if not all(0.0 <= amount < math.inf for amount in vec.tolist()):
        raise ValueError(f"resource amounts must be finite and non-negative: {vec.tolist()}")
    return vec


class TableWatcher:
    """A listener's set of rows changed since it last looked.

    ``dirty`` holds row indices; ``grown`` is set when rows were added.
    """

    __slots__ = ("__weakref__", "dirty")

    def __init__(self) -> None:
        self.dirty: set[int] = set()


class NodeTable:
    """Capacity, allocated demand and liveness of every node, growable.

    ``capacity`` and ``allocated`` are ``(n, 3)`` float64 arrays and ``alive``
    an ``(n,)`` bool array — read them freely, but change them only through
    the methods, which keep watchers informed.
    """

    def __init__(self, initial_capacity: int = 16) -> None:
        size = max(1, initial_capacity)
        self._cap = np.zeros((size, NDIM))
        self._alloc = np.zeros((size, NDIM))
        self._alive = np.zeros(size, dtype=bool)
        self._n = 0
        self.node_ids: list[str] = []
        self._index: dict[str, int] = {}
        # Plain weak references: iterating a WeakSet costs more than the allocation itself.
        self._watchers: list[weakref.ref[TableWatcher]] = []

    # -- views -----------------------------------------------------------

    @property
    def capacity(self) -> FloatArray:
        """Total capacity per node and resource, ``(n, 3)`` (a view)."""
        return self._cap[: self._n]

    @property
    def allocated(self) -> FloatArray:
        """Demand held per node and resource, ``(n, 3)`` (a view)."""
        return self._alloc[: self._n]

    @property
    def alive(self) -> NDArray[np.bool_]:
        """Whether each node takes new work, ``(n,)`` (a view)."""
        return self._alive[: self._n]

    def __len__(self) -> int:
        return self._n

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def free(self) -> FloatArray:
        """Capacity not allocated, per node and resource (negative when over-committed)."""
        return self.capacity - self.allocated

    def utilisation(self) -> FloatArray:
        """Allocated ÷ capacity per node and resource; 0 where the capacity is 0."""
        cap = self.capacity
        out = np.zeros_like(cap)
        np.divide(self.allocated, cap, out=out, where=cap > 0)
        return out

    def index_of(self, node_id: str) -> int:
        """The row of ``node_id``; ``KeyError`` if the table does not know it."""
        return self._index[node_id]

    # -- changes ---------------------------------------------------------

    def upsert(
        self,
        node_id: str,
        capacity: ArrayLike,
        allocated: ArrayLike | None = None,
        alive: bool = True,
    ) -> int:
        """Add a node or update a known one; returns its row index.

        ``allocated=None`` keeps a known node's allocation (zero for a new one).
        """
        cap = as_vector(capacity)
        i = self._index.get(node_id)
        if i is None:
            i = self._n
            if i == self._cap.shape[0]:
                self._grow()
            self._n += 1
            self.node_ids.append(node_id)
            self._index[node_id] = i
            self._alloc[i] = 0.0
        self._cap[i] = cap
        if allocated is not None:
            self._alloc[i] = as_vector(allocated)
        self._alive[i] = alive
        self._touch(i)
        return i

    def set_alive(self, node_id: str, alive: bool) -> None:
        """Mark a node up or down (a dead node keeps its row and allocation)."""
        i = self._index[node_id]
        self._alive[i] = alive
        self._touch(i)

    def set_allocated(self, node_id: str, allocated: ArrayLike) -> None:
        """Replace a node's allocation, e.g. with what a snapshot reports."""
        i = self._index[node_id]
        self._alloc[i] = as_vector(allocated)
        self._touch(i)

    def allocate(self, index: int, demand: ArrayLike) -> None:
        """Add ``demand`` to the allocation of row ``index``."""
        self._check(index)
        self._alloc[index] += as_vector(demand)
        self._touch(index)

    def release(self, index: int, demand: ArrayLike) -> None:
        """Take ``demand`` off row ``index`` (never below zero: rounding is absorbed)."""
        self._check(index)
        row = self._alloc[index]
        np.maximum(row - as_vector(demand), 0.0, out=row)
        self._touch(index)

    def max_capacity(self) -> FloatArray:
        """Per resource, the largest total capacity of any node, dead or alive."""
        if self._n == 0:
            return np.zeros(NDIM)
        return np.asarray(self.capacity.max(axis=0), dtype=np.float64)

    def fits_any_total(self, demand: FloatArray) -> bool:
        """Whether some node (dead or alive) could ever hold ``demand``."""
        if self._n == 0:
            return False
        return bool(np.any(np.all(self.capacity >= demand, axis=1)))

    # -- for placement indexes -----------------------------------------

    def watch(self) -> TableWatcher:
        """Register a watcher told about every changed row until it is dropped."""
        watcher = TableWatcher()
        self._watchers = [ref for ref in self._watchers if ref() is not None]
        self._watchers.append(weakref.ref(watcher))
        return watcher

    def _allocate_quiet(self, index: int, demand: FloatArray, source: TableWatcher) -> None:
        """Allocate on behalf of ``source``, which keeps itself up to date.

        The fast path of placement: no conversion, and every *other*
        watcher still learns of the change.
        """
        self._alloc[index] += demand
        for ref in self._watchers:
            watcher = ref()
            if watcher is not None and watcher is not source:
                watcher.dirty.add(index)

    def _changed_by(self, rows: list[int], source: TableWatcher) -> None:
        """Tell every watcher but ``source`` that ``rows`` changed (``source`` changed them)."""
        for ref in self._watchers:
            watcher = ref()
            if watcher is not None and watcher is not source:
                watcher.dirty.update(rows)

    def _touch(self, index: int) -> None:
        for ref in self._watchers:
            watcher = ref()
            if watcher is not None:
                watcher.dirty.add(index)

    def _check(self, index: int) -> None:
        if not 0 <= index < self._n:
            raise IndexError(f"node index {index} out of range 0..{self._n - 1}")

    def _grow(self) -> None:
        # Doubling keeps upsert amortised O(1) while the arrays stay contiguous.
        size = self._cap.shape[0] * 2
        for name in ("_cap", "_alloc"):
            old = getattr(self, name)
            new = np.zeros((size, NDIM))
            new[: old.shape[0]] = old
            setattr(self, name, new)
        alive = np.zeros(size, dtype=bool)
        alive[: self._alive.shape[0]] = self._alive
        self._alive = alive


__all__ = [
    "FIT_EPSILON",
    "NDIM",
    "RESOURCES",
    "FloatArray",
    "NodeTable",
    "TableWatcher",
    "as_vector",
]
