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

GPUs are devices (:mod:`~boson_shared.scheduling.devices`): per node a row of
device capacities and allocations in integer milli-units, with each device's
model and memory. The ``gpu`` column of ``capacity`` and ``allocated`` is
derived from them (their sum, in GPUs), never added to in floats, so it
cannot drift; whether a GPU demand fits is decided on the devices.

Whether a demand fits a node is one rule, :meth:`NodeTable.feasible`, which
every path follows: CPU and memory fit when ``free + FIT_EPSILON >= demand``
(the one tolerance, the same everywhere; see :data:`FIT_EPSILON`), GPUs by
the device rule, exactly.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.amounts import GRID, grid_columns
from boson_shared.scheduling.devices import MAX_DEVICES, MILLI, GpuDevice
from boson_shared.scheduling.table_devices import DeviceColumns

RESOURCES: Final = ("cpu", "memory", "gpu")
"""The resource dimensions, in column order."""

NDIM: Final = len(RESOURCES)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

FIT_EPSILON: Final = 0.0
"""The one tolerance of the fit rule: CPU or memory fits when ``free + FIT_EPSILON >= demand``.

Zero: CPU and memory compare exactly, on every path alike, and their books
are exact: every amount is on a binary grid, where float sums and
differences make no rounding error (:mod:`~boson_shared.scheduling.amounts`).
GPUs need none: their books are integer milli-units per device."""


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
    cpu, memory, gpu = vec.tolist()
    if not (0.0 <= cpu < math.inf and 0.0 <= memory < math.inf and 0.0 <= gpu < math.inf):
        raise ValueError(f"resource amounts must be finite and non-negative: {vec.tolist()}")
    # CPU and memory on the exact grid (boson_shared/scheduling/amounts.py).
    return np.array([round(cpu * GRID) / GRID, round(memory * GRID) / GRID, gpu])


def _mask(devices: int | Sequence[int]) -> int:
    return devices if isinstance(devices, int) else _dev.mask_of(devices)


class TableWatcher:
    """A listener's set of rows changed since it last looked.

    ``dirty`` holds row indices; ``grown`` is set when rows were added.
    """

    __slots__ = ("__weakref__", "dirty")

    def __init__(self) -> None:
        self.dirty: set[int] = set()


class NodeTable(DeviceColumns):
    """Capacity, allocated demand, GPU devices and liveness of every node, growable.

    ``capacity`` and ``allocated`` are ``(n, 3)`` float64 arrays and ``alive``
    an ``(n,)`` bool array; ``device_capacity`` and ``device_allocated`` are
    ``(n, G)`` int64 milli-units (capacity 0: no device in that column). Read
    them freely, but change them only through the methods, which keep the
    ``gpu`` column and the watchers in step.
    """

    def __init__(self, initial_capacity: int = 16) -> None:
        size = max(1, initial_capacity)
        self._cap = np.zeros((size, NDIM))
        self._alloc = np.zeros((size, NDIM))
        self._alive = np.zeros(size, dtype=bool)
        self._dcap: IntArray = np.zeros((size, 0), dtype=np.int64)
        self._dalloc: IntArray = np.zeros((size, 0), dtype=np.int64)
        self._dmodel: IntArray = np.full((size, 0), -1, dtype=np.int64)
        self._dmem: IntArray = np.zeros((size, 0), dtype=np.int64)
        self.models: list[str] = []
        """Model names; ``device_model`` holds indices into it (-1: no device)."""
        self._model_code: dict[str, int] = {}
        self.has_devices = False
        """Whether any node ever had a GPU device (placement then goes per device)."""
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

    # -- the fit rule -----------------------------------------------------

    def feasible(
        self, demand: FloatArray, models: frozenset[str] | None = None
    ) -> NDArray[np.bool_]:
        """The fit rule: alive nodes with room for ``demand`` now (module docstring)."""
        demand = grid_columns(demand)
        free = self.capacity - self.allocated
        ok = self.alive & (free[:, 0] + FIT_EPSILON >= demand[0])
        ok &= free[:, 1] + FIT_EPSILON >= demand[1]
        milli = _dev.to_milli(demand[2])
        if milli == 0:
            return np.asarray(ok)
        n, per = _dev.shape(milli)
        q = self.qualifying(models)
        dfree = self.device_capacity - self.device_allocated
        if per < MILLI:
            gpu = np.any(q & (dfree >= per), axis=1)
        else:
            gpu = (q & (self.device_capacity == MILLI) & (dfree == MILLI)).sum(axis=1) >= n
        return np.asarray(ok & gpu)

    def fits_any_total(self, demand: FloatArray, models: frozenset[str] | None = None) -> bool:
        """Whether some node (dead or alive), empty, could hold ``demand``."""
        if self._n == 0:
            return False
        demand = grid_columns(demand)
        cap = self.capacity
        ok = (cap[:, 0] + FIT_EPSILON >= demand[0]) & (cap[:, 1] + FIT_EPSILON >= demand[1])
        milli = _dev.to_milli(demand[2])
        if milli:
            n, per = _dev.shape(milli)
            q = self.qualifying(models)
            ok &= (q & (self.device_capacity >= per)).sum(axis=1) >= n
        return bool(np.any(ok))

    def fit_counts(self, demand: FloatArray, models: frozenset[str] | None = None) -> IntArray:
        """How many more instances of ``demand`` each node can host (0 if dead).

        Exact for identical instances placed by the device choice rule, so a
        caller may ask a placer for no more than their sum.
        """
        demand = grid_columns(demand)
        free = self.capacity - self.allocated
        counts = np.full(self._n, np.iinfo(np.int32).max, dtype=np.float64)
        for d in (0, 1):
            if demand[d] > 0:
                counts = np.minimum(counts, np.floor((free[:, d] + FIT_EPSILON) / demand[d]))
        milli = _dev.to_milli(demand[2])
        if milli:
            dfree = self.device_capacity - self.device_allocated
            per_gpu = _dev.fit_count(dfree, self.device_capacity, self.qualifying(models), milli)
            counts = np.minimum(counts, per_gpu)
        return np.where(self.alive, np.maximum(counts, 0), 0).astype(np.int64)

    # -- changes ---------------------------------------------------------

    def upsert(
        self,
        node_id: str,
        capacity: ArrayLike,
        allocated: ArrayLike | None = None,
        alive: bool = True,
        devices: list[GpuDevice] | None = None,
        device_allocated: list[int] | None = None,
    ) -> int:
        """Add a node or update a known one; returns its row index.

        ``devices``: its GPUs; without them a node has ``capacity``'s GPU
        count of whole devices of no known model (and a part device for a
        fraction). With them, their sum is the node's GPU capacity.
        ``allocated=None`` keeps a known node's allocation (zero for a new
        one); ``device_allocated`` gives the GPU part per device, else the
        ``gpu`` amount of ``allocated`` is laid on the devices in order.
        """
        cap = as_vector(capacity)
        if devices is None:
            devices = _dev.implied_devices(cap[2])
        if len(devices) > MAX_DEVICES:
            raise ValueError(f"a node has at most {MAX_DEVICES} GPU devices, got {len(devices)}")
        i = self._index.get(node_id)
        if i is None:
            i = self._n
            if i == self._cap.shape[0]:
                self._grow()
            self._n += 1
            self.node_ids.append(node_id)
            self._index[node_id] = i
            self._alloc[i] = 0.0
            self._dalloc[i] = 0
        self._set_devices(i, devices)
        self._cap[i, :2] = cap[:2]
        if allocated is not None:
            self._alloc[i, :2] = as_vector(allocated)[:2]
            self._lay_out(i, as_vector(allocated)[2], device_allocated)
        self._sync_gpu(i)
        self._alive[i] = alive
        self._touch(i)
        return i

    def set_alive(self, node_id: str, alive: bool) -> None:
        """Mark a node up or down (a dead node keeps its row and allocation)."""
        i = self._index[node_id]
        self._alive[i] = alive
        self._touch(i)

    def set_allocated(
        self, node_id: str, allocated: ArrayLike, device_allocated: list[int] | None = None
    ) -> None:
        """Replace a node's allocation, e.g. with what a snapshot reports."""
        i = self._index[node_id]
        vec = as_vector(allocated)
        self._alloc[i, :2] = vec[:2]
        self._lay_out(i, vec[2], device_allocated)
        self._sync_gpu(i)
        self._touch(i)

    def allocate(
        self,
        index: int,
        demand: ArrayLike,
        devices: int | Sequence[int] | None = None,
        models: frozenset[str] | None = None,
        saturate: bool = False,
    ) -> int:
        """Add ``demand`` to row ``index``; returns the GPU devices it holds (a mask, 0: none).

        ``devices``: the mask to hold; else the choice rule picks them.
        ``ValueError`` if the GPU part does not fit those devices, unless
        ``saturate``: then each named device fills up to its capacity at most
        (for holds laid over a report that may already count them).
        """
        self._check(index)
        vec = as_vector(demand)
        milli = _dev.to_milli(vec[2])
        mask = 0
        if milli:
            mask = self.pick_devices(index, vec[2], models) if devices is None else _mask(devices)
            if saturate and mask > 0:
                _, per = _dev.shape(milli)
                for j in _dev.indices_of(mask):
                    if j < self._dcap.shape[1]:
                        self._dalloc[index, j] = min(
                            self._dcap[index, j], self._dalloc[index, j] + per
                        )
                self._sync_gpu(index)
            else:
                self._hold(index, milli, mask)
        self._alloc[index, :2] += vec[:2]
        self._touch(index)
        return mask

    def release(
        self, index: int, demand: ArrayLike, devices: int | Sequence[int] | None = None
    ) -> None:
        """Take ``demand`` off row ``index`` (never below zero: rounding is absorbed).

        ``devices``: the mask :meth:`allocate` returned. Without it the GPU
        part comes off the devices that hold that much (shares: the least
        held that does; whole GPUs: the highest-numbered full ones).
        """
        self._check(index)
        vec = as_vector(demand)
        row = self._alloc[index]
        np.maximum(row[:2] - vec[:2], 0.0, out=row[:2])
        milli = _dev.to_milli(vec[2])
        if milli:
            n, per = _dev.shape(milli)
            held = self._dalloc[index]
            mask = self._holding(index, n, per) if devices is None else _mask(devices)
            for j in _dev.indices_of(mask):
                held[j] = max(0, held[j] - per)
            self._sync_gpu(index)
        self._touch(index)

    def max_capacity(self) -> FloatArray:
        """Per resource, the largest total capacity of any node, dead or alive."""
        if self._n == 0:
            return np.zeros(NDIM)
        return np.asarray(self.capacity.max(axis=0), dtype=np.float64)

    # -- for placement indexes -----------------------------------------

    def watch(self) -> TableWatcher:
        """Register a watcher told about every changed row until it is dropped."""
        watcher = TableWatcher()
        self._watchers = [ref for ref in self._watchers if ref() is not None]
        self._watchers.append(weakref.ref(watcher))
        return watcher

    def _allocate_quiet(self, index: int, demand: FloatArray, source: TableWatcher) -> None:
        """Allocate on behalf of ``source``, which keeps itself up to date.

        The fast path of placement, for tables without GPU devices (so the
        demand holds no GPU): no conversion, and every *other* watcher still
        learns of the change.
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
        for name, fill in (("_dcap", 0), ("_dalloc", 0), ("_dmodel", -1), ("_dmem", 0)):
            old = getattr(self, name)
            new = np.full((size, old.shape[1]), fill, dtype=np.int64)
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
    "GpuDevice",
    "IntArray",
    "NodeTable",
    "TableWatcher",
    "as_vector",
]
