"""Compiled loops of the per-device ``binpack-fgd`` index (:mod:`.fgd_device_index`).

They repeat :func:`~boson_shared.scheduling.fgd_device_scoring.device_fgd_scores` node by
node: the fit rule of the table, the device the choice rule gives the demand
(:func:`~boson_shared.scheduling.devices.pick`), and Weng et al.'s per-GPU
fragmentation (:func:`~boson_shared.scheduling.devices.fragmentation`)
before and after. The fragmentation is a mean of sums of integer
milli-units, exact in floats, and the binpack part uses the reference's
operations in its order (numba compiles without ``fastmath``), so every
score is bit-for-bit the reference's.

The typical demand points arrive prepared: ``pn[p]`` / ``pper[p]`` the
devices and milli-units per device point ``p`` asks
(:func:`~boson_shared.scheduling.devices.shape`), ``pc[p]`` / ``pm[p]`` its
CPU and memory. Per node the index caches ``frag0``, the fragmentation now
(the reference's ``before``); a placement changes one node, so only its
cache is recomputed.

A *slot* keeps one recurring demand's score on every node; when the demand
comes again, :func:`catch_up` rescores only the rows changed since (a log
of changed rows, as the index without devices keeps) and scans for the best.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

from boson_shared.scheduling.devices import MILLI
from boson_shared.scheduling.table import FIT_EPSILON

_EPS = FIT_EPSILON
"""The table's one fit tolerance (a compile-time constant of the kernels)."""
_MILLI = MILLI

_F = TypeVar("_F", bound=Callable[..., Any])


def _compiled(fn: _F) -> _F:
    """``numba.njit`` with an on-disk cache, typed as the function it wraps."""
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


@_compiled
def _fragmentation(
    free: np.ndarray,
    dcap: np.ndarray,
    f0: float,
    f1: float,
    pn: np.ndarray,
    pper: np.ndarray,
    pc: np.ndarray,
    pm: np.ndarray,
) -> float:
    """One node's expected idle GPU the typical points cannot use (milli-units).

    ``free`` / ``dcap``: its devices' free room and capacity; ``f0`` / ``f1``:
    its free CPU and memory (the points' other dimensions must fit them).
    """
    g = free.shape[0]
    total = 0
    for j in range(g):
        total += free[j]
    acc = 0.0
    for p in range(pn.shape[0]):
        n = pn[p]
        per = pper[p]
        if n == 0:
            acc += float(total)
            continue
        can = False
        if f0 + _EPS >= pc[p] and f1 + _EPS >= pm[p]:
            if per < _MILLI:
                for j in range(g):
                    if free[j] >= per:
                        can = True
                        break
            else:
                whole = 0
                for j in range(g):
                    if dcap[j] == _MILLI and free[j] == _MILLI:
                        whole += 1
                can = whole >= n
        if can:
            small = 0
            for j in range(g):
                if free[j] < per:
                    small += free[j]
            acc += float(small)
        else:
            acc += float(total)
    k = pn.shape[0]
    return acc / (k if k > 1 else 1)


@_compiled
def refresh_rows(
    rows: np.ndarray,
    cap: np.ndarray,
    alloc: np.ndarray,
    dcap: np.ndarray,
    dalloc: np.ndarray,
    frag0: np.ndarray,
    free_row: np.ndarray,
    pn: np.ndarray,
    pper: np.ndarray,
    pc: np.ndarray,
    pm: np.ndarray,
) -> None:
    """Recompute ``frag0`` of ``rows`` from the table (``free_row``: scratch, ``(G,)``)."""
    g = dcap.shape[1]
    for r in range(rows.shape[0]):
        i = rows[r]
        for j in range(g):
            free_row[j] = dcap[i, j] - dalloc[i, j]
        f0 = cap[i, 0] - alloc[i, 0]
        f1 = cap[i, 1] - alloc[i, 1]
        frag0[i] = _fragmentation(free_row, dcap[i], f0, f1, pn, pper, pc, pm)


@_compiled
def _choice(
    free: np.ndarray,
    dcap: np.ndarray,
    q: np.ndarray,
    i: int,
    use_q: bool,
    n: int,
    per: int,
    chosen: np.ndarray,
) -> int:
    """The devices the choice rule gives ``n`` × ``per`` on node ``i``, into ``chosen``.

    ``q[i]``: which of its devices qualify (read only with ``use_q``).
    Returns how many (``n``), or 0 when it does not fit.
    """
    g = free.shape[0]
    if per < _MILLI:
        best = -1
        for j in range(g):
            if (not use_q or q[i, j]) and free[j] >= per and (best < 0 or free[j] < free[best]):
                best = j
        if best < 0:
            return 0
        chosen[0] = best
        return 1
    got = 0
    for j in range(g):
        if got == n:
            break
        if (not use_q or q[i, j]) and dcap[j] == _MILLI and free[j] == _MILLI:
            chosen[got] = j
            got += 1
    return got if got == n else 0


@_compiled
def _score(
    i: int,
    r0: float,
    r1: float,
    r2: float,
    n: int,
    per: int,
    q: np.ndarray,
    use_q: bool,
    cap: np.ndarray,
    alloc: np.ndarray,
    alive: np.ndarray,
    w: np.ndarray,
    dcap: np.ndarray,
    dalloc: np.ndarray,
    frag0: np.ndarray,
    pn: np.ndarray,
    pper: np.ndarray,
    pc: np.ndarray,
    pm: np.ndarray,
    weight: float,
    free_row: np.ndarray,
    chosen: np.ndarray,
) -> float:
    """Node ``i``'s score for the demand, ``nan`` where it does not fit (see :func:`score_all`)."""
    c0 = cap[i, 0]
    c1 = cap[i, 1]
    a0 = alloc[i, 0]
    a1 = alloc[i, 1]
    if not (alive[i] and c0 - a0 + _EPS >= r0 and c1 - a1 + _EPS >= r1):
        return math.nan
    g = dcap.shape[1]
    for j in range(g):
        free_row[j] = dcap[i, j] - dalloc[i, j]
    if n > 0:
        got = _choice(free_row, dcap[i], q, i, use_q, n, per, chosen)
        if got == 0:
            return math.nan
        if per < _MILLI:
            free_row[chosen[0]] -= per
        else:
            for c in range(got):
                free_row[chosen[c]] = 0
    w0 = w[i, 0]
    w1 = w[i, 1]
    w2 = w[i, 2]
    after = (a0 * w0 + a1 * w1 + alloc[i, 2] * w2) + (w0 * r0 + w1 * r1 + w2 * r2)
    later = _fragmentation(free_row, dcap[i], (c0 - a0) - r0, (c1 - a1) - r1, pn, pper, pc, pm)
    delta = (later - frag0[i]) / _MILLI
    capg = cap[i, 2]
    scaled = delta / capg if capg > 0.0 else 0.0
    return float(after - weight * scaled)


@_compiled
def _first_best(out: np.ndarray) -> int:
    """The first row of the highest score (``nan``: does not fit), or -1."""
    best = -1
    best_s = -math.inf
    for i in range(out.shape[0]):
        v = out[i]
        if v > best_s:
            best = i
            best_s = v
    return best


@_compiled
def score_all(
    r0: float,
    r1: float,
    r2: float,
    n: int,
    per: int,
    q: np.ndarray,
    use_q: bool,
    cap: np.ndarray,
    alloc: np.ndarray,
    alive: np.ndarray,
    w: np.ndarray,
    dcap: np.ndarray,
    dalloc: np.ndarray,
    frag0: np.ndarray,
    pn: np.ndarray,
    pper: np.ndarray,
    pc: np.ndarray,
    pm: np.ndarray,
    weight: float,
    free_row: np.ndarray,
    chosen: np.ndarray,
    out: np.ndarray,
) -> int:
    """Every node's score for the demand into ``out`` (``nan`` where it does not fit).

    ``(r0, r1, r2)``: the demand; ``n`` × ``per``: its GPU part per device
    (``n == 0``: none); ``q``: per node and device whether it qualifies
    (read only with ``use_q``). Returns the first node of the highest score
    (the reference's tie-break), or -1 when it fits none.
    """
    for i in range(cap.shape[0]):
        out[i] = _score(
            i, r0, r1, r2, n, per, q, use_q, cap, alloc, alive, w, dcap, dalloc, frag0,
            pn, pper, pc, pm, weight, free_row, chosen,
        )  # fmt: skip
    return _first_best(out)


@_compiled
def catch_up(
    log: np.ndarray,
    start: int,
    stop: int,
    stamp: np.ndarray,
    tick: int,
    r0: float,
    r1: float,
    r2: float,
    n: int,
    per: int,
    q: np.ndarray,
    cap: np.ndarray,
    alloc: np.ndarray,
    alive: np.ndarray,
    w: np.ndarray,
    dcap: np.ndarray,
    dalloc: np.ndarray,
    frag0: np.ndarray,
    pn: np.ndarray,
    pper: np.ndarray,
    pc: np.ndarray,
    pm: np.ndarray,
    weight: float,
    free_row: np.ndarray,
    chosen: np.ndarray,
    out: np.ndarray,
) -> int:
    """Rescore into a slot's ``out`` the rows ``log[start:stop]`` names, each once; the best row.

    ``stamp[row] == tick`` marks a row already rescored in this call.
    """
    for e in range(start, stop):
        x = log[e]
        if stamp[x] == tick:
            continue
        stamp[x] = tick
        out[x] = _score(
            x, r0, r1, r2, n, per, q, False, cap, alloc, alive, w, dcap, dalloc, frag0,
            pn, pper, pc, pm, weight, free_row, chosen,
        )  # fmt: skip
    return _first_best(out)


__all__ = ["catch_up", "refresh_rows", "score_all"]
