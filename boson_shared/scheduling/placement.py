"""Placement: filter the nodes a demand fits, score them, pick one, commit.

The design is in ``docs/design.md#placement``.

>>> table = NodeTable()
>>> for i, used in enumerate((350, 400, 300, 250, 200)):
...     _ = table.upsert(f"n{i}", (500, 500, 0), allocated=(used, used, 0))
>>> Placer(table, "binpack").place((110, 110, 0)).node_id
'n0'

The worked example uses ``cpu = memory = 500, gpu = 0`` per node and a
demand of ``Q`` units on cpu and on memory (``LinearDemandModel``'s default
mapping), so each node's mean utilisation over its two dimensions is the
1-D number of the design's worked example.

Outcomes (:mod:`~boson_shared.scheduling.placement_outcomes`): ``placed`` on
a node (and allocated in the table), ``waiting`` or ``never``.
``binpack`` and ``spread`` use the incremental
:class:`~boson_shared.scheduling.placement_index.SortedIndex`; ``balanced`` and
``tetris`` rescore every node (vectorised) for each task, and so does
``remnant``, against the placer's :class:`~boson_shared.scheduling.typical_demand.TypicalDemand`;
those three place a run of identical demands in a batch in one pass
(:func:`~boson_shared.scheduling.identical_runs.place_run`, same result as one by one).
``binpack-fgd`` uses the incremental
:class:`~boson_shared.scheduling.fgd_index.FgdIndex` against the placer's
:class:`~boson_shared.scheduling.typical_demand.LongRunDemand` (and the full
rescore until that has seen a first placement, when each demand is its own
typical one). Every path chooses what the full rescore
(:func:`~boson_shared.scheduling.scores.choose`) chooses.

GPUs: placement picks the node *and* its devices. On a table with GPU
devices, or for a demand with a GPU part or a ``gpu_model`` constraint, every
strategy scores every node under the table's fit rule, one demand at a time,
and the table's choice rule picks the devices
(:mod:`~boson_shared.scheduling.devices`); the result carries them.
``binpack-fgd`` whose bottleneck is the GPU scores through
:class:`~boson_shared.scheduling.fgd_device_index.DeviceFgdIndex` (the
per-device fragmentation before placement kept per node, the rest compiled),
the others through the full rescore.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from boson_shared.contract.messages import NodeScore, PlacementExplanation
from boson_shared.scheduling import scores as _scores
from boson_shared.scheduling.amounts import grid_columns
from boson_shared.scheduling.devices import indices_of, parse_models
from boson_shared.scheduling.fgd_device_index import DeviceFgdIndex
from boson_shared.scheduling.fgd_index import FgdIndex
from boson_shared.scheduling.horizon import NodeHorizon
from boson_shared.scheduling.identical_runs import place_run
from boson_shared.scheduling.placement_index import SortedIndex
from boson_shared.scheduling.placement_outcomes import NEVER, WAITING, BatchPlacement, Placement
from boson_shared.scheduling.reservations import Reservation, ReservationBook
from boson_shared.scheduling.scores import STRATEGIES, Strategy
from boson_shared.scheduling.table import FIT_EPSILON as _EPS
from boson_shared.scheduling.table import NDIM, RESOURCES, FloatArray, NodeTable, as_vector
from boson_shared.scheduling.typical_demand import LongRunDemand, TypicalDemand

_LEARNS = ("remnant", "binpack-fgd")
"""Strategies scored against the typical demand their placer learns."""


def _demands(demands: ArrayLike) -> FloatArray:
    arr = np.asarray(demands, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] > NDIM:
        raise ValueError(f"demands must be an (m, {NDIM}) array, got shape {arr.shape}")
    if arr.shape[1] < NDIM:
        arr = np.hstack([arr, np.zeros((arr.shape[0], NDIM - arr.shape[1]))])
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("demands must be finite and non-negative")
    # CPU and memory on the exact grid (boson_shared/scheduling/amounts.py).
    return np.ascontiguousarray(grid_columns(arr))


class Placer:
    """Places demands on the nodes of a :class:`NodeTable` with one strategy.

    ``place`` and ``place_batch`` *commit*: the chosen node's allocation grows
    by the demand. ``choose``, ``score`` and ``explain`` only look. A placer
    follows changes others make to the table (releases, snapshots, nodes
    joining or dying) before each call.
    """

    def __init__(self, table: NodeTable, strategy: Strategy = "binpack") -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
        self.table = table
        self.strategy: Strategy = strategy
        self._index: SortedIndex | None = None
        self._fgd: FgdIndex | None = FgdIndex(table) if strategy == "binpack-fgd" else None
        self._fgd_devices: DeviceFgdIndex | None = (
            DeviceFgdIndex(table) if strategy == "binpack-fgd" else None
        )
        self.typical: TypicalDemand = (
            LongRunDemand() if strategy == "binpack-fgd" else TypicalDemand()
        )
        """What a typical task asks for, learnt from placements (``remnant``, ``binpack-fgd``)."""
        if strategy in ("binpack", "spread"):
            self._index = SortedIndex(table, "desc" if strategy == "binpack" else "asc")
        self.horizon: NodeHorizon | None = None
        """Set, placements that say when their work ends are end-aware (``horizon.py``)."""
        self._ends: tuple[float, float, float] | None = None

    @property
    def _typical(self) -> FloatArray:
        """What the strategy scores against: the median, or ``binpack-fgd``'s demand points."""
        return self.typical.points if self.strategy == "binpack-fgd" else self.typical.value

    # -- committing ------------------------------------------------------

    def place(self, demand: ArrayLike, gpu_model: str | None = None) -> Placement:
        """Place one demand and allocate it on the chosen node (and GPU devices).

        ``gpu_model``: the devices that qualify (``"A100|H100"``; ``None``: any).
        """
        vec = as_vector(demand)
        models = parse_models(gpu_model)
        self._ends = None
        if self._per_device(vec, models):
            self.typical.refresh()
            i, mask = self._place_device(vec, models)
            if i < 0:
                return Placement(None, None, "waiting" if i == WAITING else "never")
            return Placement(i, self.table.node_ids[i], "placed", indices_of(mask))
        if self._index is not None:
            self._index.sync()
        self.typical.refresh()
        if self._fgd is not None and self._has_estimate():
            out = np.empty(1, dtype=np.int64)
            self._place_fgd(vec[None, :], out)
            i = int(out[0])
        else:
            i = self._place(vec)
        if i < 0:
            return Placement(None, None, "waiting" if i == WAITING else "never")
        return Placement(i, self.table.node_ids[i], "placed")

    def place_batch(
        self,
        demands: ArrayLike,
        gpu_models: Sequence[str | None] | None = None,
        ends: tuple[float, float, float] | None = None,
    ) -> BatchPlacement:
        """Place ``demands`` (``(m, 3)``) in order, exactly as ``m`` calls of ``place`` would.

        ``gpu_models``: per demand, its ``gpu_model`` constraint (``None``: any device).
        ``ends``: ``(now, expected end, waiting since)`` of all of them; with a :attr:`horizon`,
        GPU tables place end-aware (:mod:`~boson_shared.scheduling.horizon`).
        """
        self._ends = ends if self.horizon is not None else None
        arr = _demands(demands)
        out = np.empty(arr.shape[0], dtype=np.int64)
        models = [parse_models(m) for m in gpu_models] if gpu_models is not None else None
        if models is not None and len(models) != arr.shape[0]:
            raise ValueError("one gpu_model per demand")
        if (
            self.table.has_devices
            or bool(np.any(arr[:, 2] > 0))
            or (models is not None and any(m is not None for m in models))
        ):
            return self._place_batch_devices(arr, out, models)
        if self._index is not None:
            self._index.sync()
        self.typical.refresh()
        if self._fgd is not None and self._has_estimate():
            self._place_fgd(arr, out)
        elif self._index is None:
            self._place_runs(arr, out)
        elif self.strategy == "binpack":
            self._fill_runs(arr, out)
        else:
            place = self._place
            for k in range(arr.shape[0]):
                out[k] = place(arr[k])
        ids = self.table.node_ids
        return BatchPlacement(out, tuple(ids[i] if i >= 0 else None for i in out.tolist()))

    def _per_device(self, vec: FloatArray, models: frozenset[str] | None) -> bool:
        """Whether ``vec`` goes through the per-device path (module docstring)."""
        return self.table.has_devices or vec[2] > 0 or models is not None

    def _place_device(self, vec: FloatArray, models: frozenset[str] | None) -> tuple[int, int]:
        """One demand by full rescore under the fit rule: ``(row or WAITING/NEVER, mask)``."""
        table = self.table
        s, found = self._device_scores(vec, models)
        ends = self._ends
        if ends is not None and self.horizon is not None:
            keep = self.horizon.candidates(
                ~np.isnan(s), ends[1], ends[0], vec, table.capacity, table.alive, ends[0] - ends[2]
            )
            s = np.where(keep, s, np.nan)
            found = _scores.best(table, self.strategy, s)
        if found is None:
            return (WAITING if table.fits_any_total(vec, models) else NEVER), 0
        mask = table.allocate(found, vec, models=models)
        if ends is not None and self.horizon is not None:
            self.horizon.extend(found, ends[1])
        if self.strategy in _LEARNS:
            self.typical.observe(vec)
        return found, mask

    def _device_scores(
        self, vec: FloatArray, models: frozenset[str] | None
    ) -> tuple[FloatArray, int | None]:
        """Every node's score for ``vec`` (``nan``: does not fit) and the best row, or ``None``.

        ``binpack-fgd`` per device through its index, else the full rescore: the same scores.
        """
        index = self._fgd_devices
        if index is not None and self._has_estimate():
            points = self.typical.points
            if index.serves(points):
                s, i = index.scores(vec, points, models)
                return s, (i if i >= 0 else None)
        s = _scores.scores(self.table, self.strategy, vec, self._typical, models)
        return s, _scores.best(self.table, self.strategy, s)

    def _place_batch_devices(
        self,
        arr: FloatArray,
        out: NDArray[np.int64],
        models: list[frozenset[str] | None] | None,
    ) -> BatchPlacement:
        self.typical.refresh()
        masks = np.zeros(arr.shape[0], dtype=np.int64)
        for k in range(arr.shape[0]):
            out[k], masks[k] = self._place_device(arr[k], None if models is None else models[k])
        ids = self.table.node_ids
        return BatchPlacement(out, tuple(ids[i] if i >= 0 else None for i in out.tolist()), masks)

    def _has_estimate(self) -> bool:
        """Whether the typical demand is known (until then each demand is its own typical)."""
        return bool(np.any(self.typical.points > 0))

    def _place_fgd(self, arr: FloatArray, out: NDArray[np.int64]) -> None:
        """``binpack-fgd`` through its index, learning the placed demands as the runs do."""
        fgd = self._fgd
        assert fgd is not None
        fgd.place(arr, self.typical.points, out)
        m = arr.shape[0]
        change = np.flatnonzero(np.any(arr[1:] != arr[:-1], axis=1)) + 1
        for start, stop in itertools.pairwise([0, *change.tolist(), m]):
            placed = int(np.count_nonzero(out[start:stop] >= 0))
            if placed:
                self.typical.observe(arr[start], placed)
            if placed < stop - start:
                vec = arr[start]
                out[start:stop][out[start:stop] < 0] = (
                    WAITING if self.table.fits_any_total(vec) else NEVER
                )

    def _place_runs(self, arr: FloatArray, out: NDArray[np.int64]) -> None:
        """Full-rescore strategies: each run of identical rows in one pass (as row by row)."""
        m = arr.shape[0]
        change = np.flatnonzero(np.any(arr[1:] != arr[:-1], axis=1)) + 1
        edges = [0, *change.tolist(), m]
        typical = self._typical
        for start, stop in itertools.pairwise(edges):
            vec = arr[start]
            rows = place_run(self.table, self.strategy, vec, stop - start, typical)
            out[start : start + len(rows)] = rows
            if len(rows) < stop - start:
                out[start + len(rows) : stop] = WAITING if self.table.fits_any_total(vec) else NEVER
            if rows and self.strategy in _LEARNS:
                self.typical.observe(vec, len(rows))

    def _fill_runs(self, arr: FloatArray, out: NDArray[np.int64]) -> None:
        """``binpack`` through the index: a run of identical rows fills one node at a time.

        Once binpack has chosen a node for a demand, placing it raises that
        node's score and no other's, so the node stays the choice for the
        next identical demand for as long as it fits it: the run goes there,
        one allocation per row as row by row would, and the index re-ranks
        the node once (its order is a function of the allocations alone). A
        run of a thousand instances costs a search per node it fills, not
        per instance — the trace replays' case.
        """
        index = self._index
        assert index is not None
        table = self.table
        cap, alloc = table._cap, table._alloc
        m = arr.shape[0]
        change = np.flatnonzero(np.any(arr[1:] != arr[:-1], axis=1)) + 1
        for start, stop in itertools.pairwise([0, *change.tolist(), m]):
            vec = arr[start]
            r0, r1, r2 = vec.tolist()
            k = start
            while k < stop:
                pos = index.best(r0, r1, r2)
                if pos < 0:
                    out[k:stop] = WAITING if table.fits_any_total(vec) else NEVER
                    break
                i = index.node_at(pos)
                c0, c1, c2 = cap[i].tolist()
                while True:
                    table._allocate_quiet(i, vec, index.watcher)
                    out[k] = i
                    k += 1
                    if k == stop:
                        break
                    # The index's own feasibility test, on the same floats.
                    a0, a1, a2 = alloc[i].tolist()
                    if not (c0 - a0 + _EPS >= r0 and c1 - a1 + _EPS >= r1 and c2 - a2 + _EPS >= r2):
                        break
                index.moved(i, pos)

    def _place(self, vec: FloatArray) -> int:
        index = self._index
        table = self.table
        if index is None:
            found = _scores.choose(table, self.strategy, vec, self._typical)
            if found is None:
                return WAITING if table.fits_any_total(vec) else NEVER
            table.allocate(found, vec)
            if self.strategy in _LEARNS:
                self.typical.observe(vec)
            return found
        r0, r1, r2 = vec.tolist()
        pos = index.best(r0, r1, r2)
        if pos < 0:
            return WAITING if table.fits_any_total(vec) else NEVER
        i = index.node_at(pos)
        table._allocate_quiet(i, vec, index.watcher)
        index.moved(i, pos)
        return i

    # -- looking ---------------------------------------------------------

    def choose(self, demand: ArrayLike, gpu_model: str | None = None) -> int | None:
        """The row ``place`` would pick for ``demand`` now, without allocating."""
        vec = as_vector(demand)
        models = parse_models(gpu_model)
        if self._index is None or self._per_device(vec, models):
            return _scores.choose(self.table, self.strategy, vec, self._typical, models)
        self._index.sync()
        r0, r1, r2 = vec.tolist()
        pos = self._index.best(r0, r1, r2)
        return None if pos < 0 else self._index.node_at(pos)

    def score(self, demand: ArrayLike) -> FloatArray:
        """Every node's score for ``demand``; ``nan`` where it is dead or does not fit."""
        return _scores.scores(self.table, self.strategy, as_vector(demand), self._typical)

    def explain(self, demand: ArrayLike) -> PlacementExplanation:
        """Every node's liveness, fit, score and utilisation before and after.

        Utilisation is allocated utilisation: the mean over the node's
        dimensions with capacity.
        """
        vec = as_vector(demand)
        table = self.table
        w = _scores.weights(table.capacity)
        before = _scores.weighted_sum(table.allocated, w)
        after = before + _scores.demand_term(vec, w)
        s = _scores.scores(table, self.strategy, vec, self._typical)
        nodes = tuple(
            NodeScore(
                node_id=node_id,
                alive=bool(table.alive[i]),
                fits=not np.isnan(s[i]),
                score=None if np.isnan(s[i]) else float(s[i]),
                utilisation_before=float(before[i]),
                utilisation_after=None if np.isnan(s[i]) else float(after[i]),
            )
            for i, node_id in enumerate(table.node_ids)
        )
        return PlacementExplanation(strategy=self.strategy, nodes=nodes)


__all__ = [
    "RESOURCES",
    "STRATEGIES",
    "NodeTable",
    "Placer",
    "Reservation",
    "ReservationBook",
    "Strategy",
]
