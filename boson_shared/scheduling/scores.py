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
  al., ATC 2023) against the typical demand. ``Δ`` is how much the placement
  changes the node's stranded bottleneck capacity
  (:mod:`~boson_shared.scheduling.fgd_scoring`; on a table with GPU devices
  whose bottleneck is the GPU, the per-GPU fragmentation,
  :mod:`~boson_shared.scheduling.fgd_device_scoring`).

Which nodes a demand fits is the table's one rule
(:meth:`~boson_shared.scheduling.table.NodeTable.feasible`), with an optional
``models`` constraint on the GPU devices.

Tie-break, deterministic: highest score, then — for ``binpack`` the more
allocated node, for ``spread`` the less allocated one — then the lowest index.
(The middle rule only matters when rounding makes two different utilisations
score the same; it is what lets the fast index stop scanning early.)
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np

from boson_shared.scheduling.fgd_device_scoring import GPU, device_fgd_scores
from boson_shared.scheduling.fgd_scoring import bottleneck, fgd_scores, fgd_typical
from boson_shared.scheduling.table import FloatArray, NodeTable

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
    "REMNANT_WEIGHT",
    "STRATEGIES",
    "Strategy",
    "best",
    "choose",
    "demand_term",
    "feasible",
    "raw_scores",
    "scores",
    "stranded",
    "weighted_sum",
    "weights",
]
