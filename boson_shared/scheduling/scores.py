"""Placement scores, vectorised over every node of a :class:`NodeTable`.

All six strategies are written in terms of these per-node quantities so that
the incremental indexes (``placement_index`` for ``binpack`` and ``spread``,
``fgd_index`` for ``binpack-fgd``) and the full rescore here agree to the
last bit:

* ``w[i, d] = 1 / (capacity[i, d] * k_i)`` on the ``k_i`` dimensions where
  node ``i`` has capacity, else 0 — the weights of a mean over those dims;
* ``u[i] = Σ_d allocated[i, d] * w[i, d]`` — the node's allocated utilisation
  (mean over its dimensions), summed left to right;
* ``t[i] = Σ_d demand[d] * w[i, d]`` — what the demand adds to it.

Scores (higher is better; ``nan`` where the demand does not fit):

* ``binpack`` = ``u + t``: mean utilisation after placement (most-allocated);
* ``spread`` = ``1 - (u + t)``: mean free fraction after placement
  (least-allocated, like Kubernetes' ``LeastAllocated``);
* ``balanced`` = ``1 - std_d(util_d after)``: how even the node's dimensions
  end up (Kubernetes' ``BalancedAllocation``);
* ``tetris`` = ``Σ_d (demand_d / cap_d) * (free_d / cap_d) / k``: alignment of
  the demand with the free capacity, both normalised by capacity (Grandl et
  al., *Multi-resource packing for cluster schedulers*, SIGCOMM 2014);
* ``remnant`` = ``u + t - REMNANT_WEIGHT * s``: binpack minus what the
  placement strands. ``s`` is the free capacity left on the node that a
  *typical* task (the caller's estimate, ``typical``) could not use if the
  node were filled with typical tasks: with ``f`` the free vector after
  placement and ``n = floor(min_d f_d / typical_d)`` typical tasks still
  fitting, ``s = Σ_d (f_d - n * typical_d) * w_d`` (the fragmentation measure
  of Weng et al., *Beware of Fragmentation*, USENIX ATC 2023, against a
  one-point task distribution). It steers away from filling one dimension of
  a node while another stays free (CPU full, memory stranded) and from
  remnants smaller than a typical task. With no estimate yet (``typical`` all
  zero) it is exactly ``binpack``.
* ``binpack-fgd`` = ``u + t - FGD_WEIGHT * Δ``: binpack that first of all does
  not strand the bottleneck resource — fragmentation gradient descent (Weng et
  al., ATC 2023) against the typical demand, on the bottleneck dimension
  ``b`` only (the one the typical task needs the largest share of, cluster
  wide). ``Δ = (m(f - demand) - m(f)) / cap_b`` is how much the placement
  changes the node's *stranded* bottleneck capacity ``m``: with
  ``n = floor(min over the other dimensions d of f_d / typical_d)`` typical
  tasks fitting on those, ``m(f) = f_b`` if ``f_b < typical_b`` or ``n = 0``
  (no typical task fits at all), else ``max(0, f_b - n * typical_b)`` (the
  part the other dimensions leave no room to use). It is 0 on a node with
  room for typical tasks on every dimension, so there the score is binpack's;
  it rises when CPU-heavy tasks fill a node's CPU and leave its memory, or
  when a remnant smaller than a typical task is left; it falls when a task
  fills such a remnant. The weight is large (see :data:`FGD_WEIGHT`):
  most-allocated among the placements that strand the least, give or take a
  sliver, so whole nodes stay free. The typical demand may be several
  points of the demand distribution (``(k, 3)``; the placer's are the
  quartiles, :data:`~boson_shared.scheduling.typical_demand.QUANTILES`): ``m`` is then
  the mean over them, FGD's expected stranding for the next task. With no
  estimate yet the demand being placed is taken as the typical one.

On a table with GPU devices whose bottleneck is the GPU, ``binpack-fgd``'s
``m`` is the per-GPU fragmentation of Weng et al.
(:func:`~boson_shared.scheduling.devices.fragmentation`): the expected idle
GPU the typical tasks could not use, device by device, before and after the
demand is placed on the devices the choice rule gives it on that node.

Which nodes a demand fits is the table's one rule
(:meth:`~boson_shared.scheduling.table.NodeTable.feasible`), with an optional
``models`` constraint on the GPU devices.

Tie-break, deterministic: highest score, then — for ``binpack`` the more
allocated node, for ``spread`` the less allocated one — then the lowest index.
(The middle rule only matters when rounding makes two different utilisations
score the same; it is what lets the fast index stop scanning early.)
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

import numpy as np

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.devices import MILLI
from boson_shared.scheduling.table import FIT_EPSILON, FloatArray, NodeTable

Strategy: TypeAlias = Literal["binpack", "spread", "balanced", "tetris", "remnant", "binpack-fgd"]
STRATEGIES: tuple[Strategy, ...] = (
    "binpack",
    "spread",
    "balanced",
    "tetris",
    "remnant",
    "binpack-fgd",
)

REMNANT_WEIGHT = 2.0
"""Weight of stranded capacity in ``remnant``. Below 2.5 the worked example of
the placement design (``docs/design.md#placement``) holds even when the
typical demand is the example's own demand (see the tests); larger values
strand less on the Alibaba trace."""


DEFAULT_STRATEGY: Strategy = "binpack-fgd"
"""The scheduler's default: the most-allocated ``binpack`` of the placement
design (``docs/design.md#placement``) that first of all does not strand the
bottleneck resource, because of all six it strands the least on the Alibaba
trace (``benchmarks/trace_quality.py``). The placer runs it through
:class:`~boson_shared.scheduling.fgd_index.FgdIndex` (on tables with GPU
devices, :class:`~boson_shared.scheduling.fgd_device_index.DeviceFgdIndex`),
which recomputes only what a placement changes and chooses exactly what
:func:`choose` does."""

FGD_WEIGHT = 1000.0
"""Weight of the stranding change in ``binpack-fgd``, in utilisation units of
the bottleneck. Large enough that stranding a whole typical task's worth of
the bottleneck outweighs any binpack gain (at most 1), small enough that a
change below a thousandth of the node's bottleneck capacity does not, so
binpack may accept a sliver of stranding for a much fuller node. A strictly
lexicographic guard (a far larger weight) strands more on the Alibaba trace
(the comparison is in ``docs/design.md#placement``)."""


_STACK_ROWS = 512
"""Up to this many nodes :func:`fgd_scores` scores before and after in one call (same result)."""


def weights(capacity: FloatArray) -> FloatArray:
    """Per-node weights of the mean over the dimensions with capacity, ``(n, 3)``."""
    has = capacity > 0
    k = has.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.zeros_like(capacity)
    np.divide(1.0, capacity * k, out=out, where=has)
    return out


def weighted_sum(values: FloatArray, w: FloatArray) -> FloatArray:
    """``Σ_d values[:, d] * w[:, d]`` summed left to right (the one rounding used everywhere)."""
    out: FloatArray = values[:, 0] * w[:, 0] + values[:, 1] * w[:, 1] + values[:, 2] * w[:, 2]
    return out


def demand_term(demand: FloatArray, w: FloatArray) -> FloatArray:
    """``t``: the utilisation a demand adds to each node."""
    out: FloatArray = w[:, 0] * demand[0] + w[:, 1] * demand[1] + w[:, 2] * demand[2]
    return out


def feasible(
    table: NodeTable, demand: FloatArray, models: frozenset[str] | None = None
) -> np.ndarray:
    """Alive nodes with room for ``demand`` now: the table's one fit rule."""
    return table.feasible(demand, models)


GPU = 2
"""The GPU column."""


def device_fgd_scores(
    table: NodeTable,
    after: FloatArray,
    demand: FloatArray,
    typ: FloatArray,
    models: frozenset[str] | None = None,
) -> FloatArray:
    """``binpack-fgd`` with ``m`` the per-GPU fragmentation (module docstring).

    Computed on the nodes the demand fits only (in a busy cluster, few); the
    others keep binpack's score, which :func:`scores` hides.
    """
    out = np.array(after, dtype=np.float64)
    rows = np.flatnonzero(table.feasible(demand, models))
    if rows.size == 0:
        return out
    dcap = table.device_capacity[rows]
    free = dcap - table.device_allocated[rows]
    points = np.atleast_2d(typ)
    pm = [_dev.to_milli(p[GPU]) for p in points.tolist()]
    node_free = table.capacity[rows] - table.allocated[rows]

    def others(f: FloatArray) -> np.ndarray:
        return np.asarray(
            (f[None, :, 0] + FIT_EPSILON >= points[:, None, 0])
            & (f[None, :, 1] + FIT_EPSILON >= points[:, None, 1])
        )

    before = _dev.fragmentation(free, dcap, others(node_free), pm)
    free_after = free.copy()
    milli = _dev.to_milli(demand[GPU])
    if milli:  # every row fits it: put it on the devices the choice rule gives it
        n, per = _dev.shape(milli)
        q = table.qualifying(models)[rows]
        if per < MILLI:  # best fit: the least free device that holds the share
            cand = q & (free >= per)
            j = np.argmin(np.where(cand, free, np.iinfo(np.int64).max), axis=1)
            free_after[np.arange(rows.size), j] -= per
        else:  # the lowest-numbered entirely free devices
            full = q & (dcap == MILLI) & (free == MILLI)
            free_after[full & (np.cumsum(full, axis=1) <= n)] = 0
    later = _dev.fragmentation(free_after, dcap, others(node_free - demand), pm)
    delta = (later - before) / MILLI
    cap_gpu = table.capacity[rows, GPU]
    scaled = np.zeros(rows.size)
    np.divide(delta, cap_gpu, out=scaled, where=cap_gpu > 0)
    out[rows] = after[rows] - FGD_WEIGHT * scaled
    return out


def stranded(free_after: FloatArray, w: FloatArray, typical: FloatArray) -> FloatArray:
    """Per row, the free capacity (weighted by ``w``) that typical tasks could not use.

    ``free_after`` is ``(n, 3)``; 0 everywhere when ``typical`` is all zero.
    """
    need = typical > 0
    if not need.any():
        return np.zeros(free_after.shape[0])
    room = np.floor((free_after[:, need] / typical[need]).min(axis=1))
    left = np.maximum(free_after - room[:, None] * typical, 0.0)
    return weighted_sum(left, w)


def bottleneck(capacity: FloatArray, typical: FloatArray) -> int:
    """The dimension a typical task needs the largest share of, cluster wide (lowest on ties).

    ``typical`` is one demand ``(3,)`` or demand points ``(k, 3)``, whose mean is taken.
    """
    points = np.atleast_2d(typical)
    mean = points.sum(axis=0) / points.shape[0]
    total = capacity.sum(axis=0)
    share = np.divide(mean, total, out=np.zeros_like(mean), where=total > 0)
    return int(np.argmax(share))


def stranded_bottleneck(free: FloatArray, typical: FloatArray, b: int) -> FloatArray:
    """Per row of ``free`` (``(n, 3)``), the bottleneck capacity typical tasks cannot use.

    ``m`` of ``binpack-fgd`` (module docstring): all of ``free[:, b]`` when it
    is below ``typical[b]`` or no typical task fits the other dimensions, else
    what those dimensions leave no room for. ``typical`` may be points of the
    demand distribution, ``(k, 3)``: then the mean over them, each equally
    likely — the expected stranding of the next task (Weng et al.).
    """
    fb = np.maximum(free[:, b], 0.0)
    points = np.atleast_2d(typical)
    k = points.shape[0]
    pb = points[:, b : b + 1]  # (k, 1)
    # Whole typical tasks the other dimensions hold, per point and row: the
    # least over the dimensions the point asks for (any number, inf, if none).
    room: FloatArray | None = None
    for d in range(free.shape[1]):
        want = points[:, d : d + 1]
        asks = want > 0
        if d == b or not asks.any():
            continue
        avail = np.maximum(free[:, d], 0.0)
        if asks.all():
            held = avail / want
        else:  # some point does not ask for this dimension: it holds any number
            held = np.full((k, free.shape[0]), np.inf)
            np.divide(avail, want, out=held, where=asks)
        room = held if room is None else np.minimum(room, held)
    n = np.floor(room) if room is not None else np.full((k, free.shape[0]), np.inf)
    unlimited = np.isinf(n)
    with np.errstate(invalid="ignore"):  # inf × a zero bottleneck amount: nan, replaced below
        whole = np.minimum(fb, n * pb)
    if unlimited.any():  # no other dimension limits it: all of it is usable
        whole = np.where(unlimited, fb, whole)
    usable = np.where((fb < pb) | (n < 1), 0.0, whole)
    total = usable[0]
    for row in usable[1:]:  # summed in order: the scalar twin adds the same way
        total = total + row
    out: FloatArray = fb - total / k
    return out


def fgd_typical(demand: FloatArray, typical: FloatArray | None) -> FloatArray:
    """The typical demand ``binpack-fgd`` uses: the estimate, or ``demand`` without one."""
    if typical is None or not np.any(typical > 0):
        return demand
    return typical


def fgd_scores(
    cap: FloatArray,
    alloc: FloatArray,
    after: FloatArray,
    demand: FloatArray,
    typ: FloatArray,
    b: int,
) -> FloatArray:
    """``binpack-fgd`` from binpack's ``after`` (``u + t``), for a given bottleneck ``b``."""
    free = cap - alloc
    n = free.shape[0]
    if n <= _STACK_ROWS:
        # After and before in one call: on a small cluster numpy's per-call
        # overhead, not the arithmetic, is the cost, and this halves the calls.
        both = stranded_bottleneck(np.concatenate((free - demand, free)), typ, b)
        delta = both[:n] - both[n:]
    else:  # on a large one the doubled temporaries cost more than the calls
        delta = stranded_bottleneck(free - demand, typ, b) - stranded_bottleneck(free, typ, b)
    scaled = np.zeros_like(after)
    np.divide(delta, cap[:, b], out=scaled, where=cap[:, b] > 0)
    return np.asarray(after - FGD_WEIGHT * scaled, dtype=np.float64)


FgdPoints: TypeAlias = tuple[tuple[float, tuple[tuple[int, float], ...]], ...]
"""Typical points as the scalar twin reads them: per point, its bottleneck
amount and the (dimension, amount) pairs it asks for on the others."""


def fgd_points(typ: list[list[float]], b: int) -> FgdPoints:
    """``typ`` (points as lists) prepared once for many :func:`fgd_row_score` calls."""
    return tuple(
        (p[b], tuple((d, p[d]) for d in range(len(p)) if d != b and p[d] > 0)) for p in typ
    )


def fgd_row_score(
    cap: list[float], alloc: list[float], demand: list[float], points: FgdPoints, b: int
) -> float:
    """:func:`raw_scores`' ``binpack-fgd`` score of one node, in plain floats.

    ``points``: the typical demand points prepared by :func:`fgd_points` (once
    per run). The same operations in the same order as the vectorised path,
    so the result is bit-for-bit equal (the tests check); it is what lets
    :func:`~boson_shared.scheduling.identical_runs.place_run` rescore the node it just
    chose without numpy's per-call cost.
    """
    k = sum(1 for c in cap if c > 0)
    w = [1.0 / (c * k) if c > 0 else 0.0 for c in cap]
    u = alloc[0] * w[0] + alloc[1] * w[1] + alloc[2] * w[2]
    after = u + (w[0] * demand[0] + w[1] * demand[1] + w[2] * demand[2])
    free = [c - a for c, a in zip(cap, alloc, strict=True)]
    before_m = _row_stranded(free, points, b)
    after_m = _row_stranded([f - d for f, d in zip(free, demand, strict=True)], points, b)
    delta = after_m - before_m
    scaled = delta / cap[b] if cap[b] > 0 else 0.0
    return after - FGD_WEIGHT * scaled


def _row_stranded(free: list[float], points: FgdPoints, b: int) -> float:
    fb = max(free[b], 0.0)
    total = 0.0
    for k, (pb, dims) in enumerate(points):
        if dims:
            room = math.inf
            for d, pd in dims:
                r = max(free[d], 0.0) / pd
                if r < room:
                    room = r
            n = math.floor(room)
            usable = 0.0 if (fb < pb or n < 1) else min(fb, n * pb)
        else:  # no other dimension limits it
            usable = 0.0 if fb < pb else fb
        total = usable if k == 0 else total + usable  # the vector path's order
    return fb - total / len(points)


def raw_scores(
    table: NodeTable,
    strategy: Strategy,
    demand: FloatArray,
    typical: FloatArray | None = None,
    models: frozenset[str] | None = None,
) -> FloatArray:
    """Every node's score for ``demand``, feasible or not (``typical``: for ``remnant``)."""
    cap = table.capacity
    alloc = table.allocated
    w = weights(cap)
    after = weighted_sum(alloc, w) + demand_term(demand, w)
    if strategy == "binpack":
        return after
    if strategy == "remnant":
        if typical is None or not np.any(typical > 0):
            return after
        penalty = stranded(cap - alloc - demand, w, typical)
        return np.asarray(after - REMNANT_WEIGHT * penalty, dtype=np.float64)
    if strategy == "binpack-fgd":
        typ = fgd_typical(demand, typical)
        b = bottleneck(cap, typ)
        if b == GPU and table.has_devices:
            return device_fgd_scores(table, after, demand, typ, models)
        return fgd_scores(cap, alloc, after, demand, typ, b)
    if strategy == "spread":
        return 1.0 - after
    has = cap > 0
    k = has.sum(axis=1).astype(np.float64)
    if strategy == "balanced":
        util = np.zeros_like(cap)
        np.divide(alloc + demand, cap, out=util, where=has)
        dev = np.where(has, util - after[:, None], 0.0)
        var = np.zeros_like(after)
        np.divide((dev * dev).sum(axis=1), k, out=var, where=k > 0)
        return np.asarray(1.0 - np.sqrt(var), dtype=np.float64)
    if strategy == "tetris":
        free = cap - alloc
        terms = np.zeros_like(cap)
        np.divide(demand * free, cap * cap, out=terms, where=has)
        out = np.zeros_like(after)
        np.divide(terms.sum(axis=1), k, out=out, where=k > 0)
        return out
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")


def scores(
    table: NodeTable,
    strategy: Strategy,
    demand: FloatArray,
    typical: FloatArray | None = None,
    models: frozenset[str] | None = None,
) -> FloatArray:
    """Every node's score for ``demand``; ``nan`` where it is dead or does not fit."""
    out = raw_scores(table, strategy, demand, typical, models)
    return np.where(feasible(table, demand, models), out, np.nan)


def choose(
    table: NodeTable,
    strategy: Strategy,
    demand: FloatArray,
    typical: FloatArray | None = None,
    models: frozenset[str] | None = None,
) -> int | None:
    """The node a full rescore picks for ``demand`` (tie-break above), or ``None``.

    The reference the fast index is tested against, and the path used by
    ``balanced`` and ``tetris``.
    """
    return best(table, strategy, scores(table, strategy, demand, typical, models))


def best(table: NodeTable, strategy: Strategy, s: FloatArray) -> int | None:
    """The node of the highest score ``s`` (NaN: does not fit), tie-break above, or ``None``."""
    ok = ~np.isnan(s)
    if not ok.any():
        return None
    cand = np.flatnonzero(ok & (s == np.nanmax(s)))
    if cand.size == 1 or strategy not in ("binpack", "spread"):
        return int(cand[0])
    u = weighted_sum(table.allocated, weights(table.capacity))[cand]
    pick = u == (u.max() if strategy == "binpack" else u.min())
    return int(cand[pick][0])


__all__ = [
    "DEFAULT_STRATEGY",
    "FGD_WEIGHT",
    "REMNANT_WEIGHT",
    "STRATEGIES",
    "FgdPoints",
    "Strategy",
    "best",
    "bottleneck",
    "choose",
    "demand_term",
    "device_fgd_scores",
    "feasible",
    "fgd_points",
    "fgd_row_score",
    "fgd_scores",
    "fgd_typical",
    "raw_scores",
    "scores",
    "stranded",
    "stranded_bottleneck",
    "weighted_sum",
    "weights",
]
