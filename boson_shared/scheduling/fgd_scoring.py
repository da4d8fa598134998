"""``binpack-fgd``'s score: the bottleneck resource and what a placement strands of it.

``binpack-fgd`` = ``u + t - FGD_WEIGHT * Δ`` (``u + t`` binpack's score, see
:mod:`~boson_shared.scheduling.scores`): binpack that first of all does not
strand the bottleneck resource — fragmentation gradient descent (Weng et
al., *Beware of Fragmentation*, USENIX ATC 2023) against the typical demand,
on the bottleneck dimension ``b`` only (the one the typical task needs the
largest share of, cluster wide). ``Δ = (m(f - demand) - m(f)) / cap_b`` is
how much the placement changes the node's *stranded* bottleneck capacity
``m``: with ``n = floor(min over the other dimensions d of f_d / typical_d)``
typical tasks fitting on those, ``m(f) = f_b`` if ``f_b < typical_b`` or
``n = 0`` (no typical task fits at all), else ``max(0, f_b - n * typical_b)``
(the part the other dimensions leave no room to use). It is 0 on a node with
room for typical tasks on every dimension, so there the score is binpack's;
it rises when CPU-heavy tasks fill a node's CPU and leave its memory, or
when a remnant smaller than a typical task is left; it falls when a task
fills such a remnant. The weight is large (see :data:`FGD_WEIGHT`):
most-allocated among the placements that strand the least, give or take a
sliver, so whole nodes stay free. The typical demand may be several points
of the demand distribution (``(k, 3)``; the placer's are the quartiles,
:data:`~boson_shared.scheduling.typical_demand.QUANTILES`): ``m`` is then the
mean over them, FGD's expected stranding for the next task. With no estimate
yet the demand being placed is taken as the typical one
(:func:`fgd_typical`).

Two twins compute it with the same operations in the same order, so their
scores are bit-for-bit equal: :func:`fgd_scores`, vectorised over every node
of a table (what :func:`~boson_shared.scheduling.scores.raw_scores` gives
``binpack-fgd``), and :func:`fgd_row_score`, one node in plain floats. On a table
with GPU devices whose bottleneck is the GPU, ``m`` is the per-GPU
fragmentation instead (:mod:`~boson_shared.scheduling.fgd_device_scoring`).
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np

from boson_shared.scheduling.table import FloatArray

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


__all__ = [
    "FGD_WEIGHT",
    "FgdPoints",
    "bottleneck",
    "fgd_points",
    "fgd_row_score",
    "fgd_scores",
    "fgd_typical",
    "stranded_bottleneck",
]
