"""Compiled loops of the incremental ``binpack-fgd`` index (:mod:`.fgd_index`).

Each function repeats the operations of the vectorised reference
(:func:`~boson_shared.scheduling.fgd_scoring.fgd_scores` and
:func:`~boson_shared.scheduling.fgd_scoring.stranded_bottleneck`) in the same
order, so every score is bit-for-bit the reference's: numba compiles without
``fastmath``, so it neither fuses multiply-adds nor reorders sums.

The typical demand points arrive prepared per bottleneck ``b``: ``pb[p]`` the
point's bottleneck amount, ``q1[p]`` / ``q2[p]`` what it asks of the two other
dimensions ``o1 < o2`` (0: it does not ask).

Per node the index caches the free vector, the allocated utilisation ``u``
and ``m0`` (the stranded bottleneck now, the reference's ``m`` before
placement). A placement changes one node, so only its caches are recomputed;
a demand's score on a node then needs only ``m`` after placement.

:func:`score_all` scores one demand on every node in branch-free passes over
columns, which the compiler vectorises: what a new slot and a demand without
a slot cost. :func:`_score` scores one node, for the slots' catching up.

A *slot* caches one recurring demand's score on every node (``-inf`` where it
does not fit), with the best node of each block of :data:`BLOCK` nodes. Every
placement appends its node to a log; a slot, when next used, rescores only the
nodes logged since its last use and rescans only the blocks whose best fell.
The kernels serve tables without GPU devices and demands without GPU; on
tables with GPU devices the placer scores ``binpack-fgd`` per device through
:mod:`.fgd_device_kernels` (the same slots and log, without block bests).

The kernels call one another, so they stay in this one file: numba's on-disk
cache (``cache=True``) is checked against the source of the file a kernel is
defined in only, and a kernel calling one defined in another file would go
on running that one's old compiled code after only the other file changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

from boson_shared.scheduling.table import FIT_EPSILON

_EPS = FIT_EPSILON
"""The table's one fit tolerance (a compile-time constant of the kernels)."""

_F = TypeVar("_F", bound=Callable[..., Any])

BLOCK_SHIFT = 6
BLOCK = 1 << BLOCK_SHIFT
"""Nodes per block of a slot: the unit rescanned when a block's best node gets worse."""


def _compiled(fn: _F) -> _F:
    """``numba.njit`` with an on-disk cache, typed as the function it wraps."""
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


@_compiled
def _pick(f0: float, f1: float, f2: float, d: int) -> float:
    if d == 0:
        return f0
    if d == 1:
        return f1
    return f2


@_compiled
def _room(fo1: float, fo2: float, q1: float, q2: float) -> float:
    """Whole tasks of a point the two other dimensions hold (``inf``: neither limits it)."""
    room = math.inf
    if q1 > 0.0:
        held = max(fo1, 0.0) / q1
        if held < room:
            room = held
    if q2 > 0.0:
        held = max(fo2, 0.0) / q2
        if held < room:
            room = held
    return room


@_compiled
def _usable(fb: float, room: float, pb: float) -> float:
    """What of the free bottleneck ``fb`` whole tasks of one point can use."""
    if room == math.inf:  # no other dimension limits it: all of it is usable
        return 0.0 if fb < pb else fb
    n = math.floor(room)
    if fb < pb or n < 1.0:
        return 0.0
    whole = n * pb
    return whole if whole < fb else fb


@_compiled
def _stranded(
    f0: float,
    f1: float,
    f2: float,
    pb: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    shared: np.ndarray,
    b: int,
    o1: int,
    o2: int,
) -> float:
    """``m``: the mean over the points of the free bottleneck they cannot use.

    ``shared[p]``: point ``p`` asks the other dimensions what ``p - 1`` does,
    so its room is the same number (the quartiles often share a CPU request).
    """
    fb = max(_pick(f0, f1, f2, b), 0.0)
    fo1 = _pick(f0, f1, f2, o1)
    fo2 = _pick(f0, f1, f2, o2)
    total = 0.0
    room = 0.0
    for p in range(pb.shape[0]):
        if not shared[p]:
            room = _room(fo1, fo2, q1[p], q2[p])
        usable = _usable(fb, room, pb[p])
        total = usable if p == 0 else total + usable
    return float(fb - total / pb.shape[0])


@_compiled
def refresh_rows(
    rows: np.ndarray,
    cap: np.ndarray,
    alloc: np.ndarray,
    w: np.ndarray,
    free: np.ndarray,
    u: np.ndarray,
    m0: np.ndarray,
    pb: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    shared: np.ndarray,
    b: int,
    o1: int,
    o2: int,
) -> None:
    """Recompute the caches of ``rows`` from the table (``w`` already current)."""
    for j in range(rows.shape[0]):
        _refresh_node(rows[j], cap, alloc, w, free, u, m0, pb, q1, q2, shared, b, o1, o2)


@_compiled
def _refresh_node(
    i: int,
    cap: np.ndarray,
    alloc: np.ndarray,
    w: np.ndarray,
    free: np.ndarray,
    u: np.ndarray,
    m0: np.ndarray,
    pb: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    shared: np.ndarray,
    b: int,
    o1: int,
    o2: int,
) -> None:
    a0 = alloc[i, 0]
    a1 = alloc[i, 1]
    a2 = alloc[i, 2]
    f0 = cap[i, 0] - a0
    f1 = cap[i, 1] - a1
    f2 = cap[i, 2] - a2
    free[0, i] = f0
    free[1, i] = f1
    free[2, i] = f2
    u[i] = a0 * w[i, 0] + a1 * w[i, 1] + a2 * w[i, 2]
    m0[i] = _stranded(f0, f1, f2, pb, q1, q2, shared, b, o1, o2)


@_compiled
def _score(
    i: int,
    r0: float,
    r1: float,
    r2: float,
    cap: np.ndarray,
    alloc: np.ndarray,
    alive: np.ndarray,
    w: np.ndarray,
    m0: np.ndarray,
    pb: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    shared: np.ndarray,
    b: int,
    o1: int,
    o2: int,
    weight: float,
) -> float:
    """Node ``i``'s ``binpack-fgd`` score for the demand, ``-inf`` where it does not fit."""
    c0 = cap[i, 0]
    c1 = cap[i, 1]
    c2 = cap[i, 2]
    a0 = alloc[i, 0]
    a1 = alloc[i, 1]
    a2 = alloc[i, 2]
    if not (alive[i] and c0 - a0 + _EPS >= r0 and c1 - a1 + _EPS >= r1 and c2 - a2 + _EPS >= r2):
        return -math.inf
    w0 = w[i, 0]
    w1 = w[i, 1]
    w2 = w[i, 2]
    after = (a0 * w0 + a1 * w1 + a2 * w2) + (w0 * r0 + w1 * r1 + w2 * r2)
    m = _stranded((c0 - a0) - r0, (c1 - a1) - r1, (c2 - a2) - r2, pb, q1, q2, shared, b, o1, o2)
    capb = _pick(c0, c1, c2, b)
    scaled = (m - m0[i]) / capb if capb > 0.0 else 0.0
    return float(after - weight * scaled)


@_compiled
def score_all(
    r0: float,
    r1: float,
    r2: float,
    free: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    capb: np.ndarray,
    m0: np.ndarray,
    alive: np.ndarray,
    pb: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    shared: np.ndarray,
    b: int,
    o1: int,
    o2: int,
    weight: float,
    scratch: np.ndarray,
    out: np.ndarray,
) -> None:
    """Every node's score for the demand into ``out`` (``-inf`` where it does not fit).

    :func:`_score`'s operations on columns (``free``, ``w`` as ``(3, n)``;
    ``u`` the allocated utilisation; ``capb`` the bottleneck capacity), one
    pass per step and branch-free, so that the compiler vectorises them.
    """
    n = out.shape[0]
    rb = _pick(r0, r1, r2, b)
    ro1 = _pick(r0, r1, r2, o1)
    ro2 = _pick(r0, r1, r2, o2)
    fb = scratch[0]
    fo1 = scratch[1]
    fo2 = scratch[2]
    total = scratch[3]
    whole_n = scratch[4]
    fcol_b = free[b]
    fcol_1 = free[o1]
    fcol_2 = free[o2]
    for i in range(n):
        fb[i] = max(fcol_b[i] - rb, 0.0)
        fo1[i] = max(fcol_1[i] - ro1, 0.0)
        fo2[i] = max(fcol_2[i] - ro2, 0.0)
    k = pb.shape[0]
    for p in range(k):
        a1 = q1[p]
        a2 = q2[p]
        pp = pb[p]
        if not shared[p]:
            if a1 > 0.0 and a2 > 0.0:
                for i in range(n):
                    x = fo1[i] / a1
                    y = fo2[i] / a2
                    whole_n[i] = math.floor(x if x < y else y)
            elif a1 > 0.0:
                for i in range(n):
                    whole_n[i] = math.floor(fo1[i] / a1)
            elif a2 > 0.0:
                for i in range(n):
                    whole_n[i] = math.floor(fo2[i] / a2)
            else:
                for i in range(n):
                    whole_n[i] = math.inf
        for i in range(n):
            f = fb[i]
            nn = whole_n[i]
            whole = nn * pp
            use = 0.0 if (f < pp or nn < 1.0) else (whole if whole < f else f)
            total[i] = use if p == 0 else total[i] + use
    f0 = free[0]
    f1 = free[1]
    f2 = free[2]
    w0 = w[0]
    w1 = w[1]
    w2 = w[2]
    for i in range(n):
        m = fb[i] - total[i] / k
        c = capb[i]
        scaled = (m - m0[i]) / c if c > 0.0 else 0.0
        s = (u[i] + (w0[i] * r0 + w1[i] * r1 + w2[i] * r2)) - weight * scaled
        ok = alive[i] and f0[i] + _EPS >= r0 and f1[i] + _EPS >= r1 and f2[i] + _EPS >= r2
        out[i] = s if ok else -math.inf


@_compiled
def _argmax(s: np.ndarray, lo: int, hi: int) -> int:
    """The first row of ``s[lo:hi]`` with the largest score, or -1 if all are ``-inf``."""
    best = -1
    best_s = -math.inf
    for i in range(lo, hi):
        v = s[i]
        if v > best_s:
            best = i
            best_s = v
    return best


@_compiled
def place(
    demands: np.ndarray,
    slot_of: np.ndarray,
    out: np.ndarray,
    cap: np.ndarray,
    alloc: np.ndarray,
    alive: np.ndarray,
    w: np.ndarray,
    wt: np.ndarray,
    free: np.ndarray,
    u: np.ndarray,
    capb: np.ndarray,
    m0: np.ndarray,
    pb: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    shared: np.ndarray,
    b: int,
    o1: int,
    o2: int,
    weight: float,
    scores: np.ndarray,
    block_best: np.ndarray,
    valid: np.ndarray,
    seen_upto: np.ndarray,
    log: np.ndarray,
    state: np.ndarray,
    stamp: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Place ``demands`` in order, committing each to ``alloc``; ``out[j]``: the row or -1.

    ``slot_of[j]``: the slot of demand ``j`` (-1: none, scored afresh into
    ``scratch[5]``). ``state`` holds the log's length and the stamp counter
    that dedupes the log. ``w`` is ``(n, 3)``, ``wt`` the same as columns.
    """
    n = cap.shape[0]
    nblocks = block_best.shape[1]
    fell = np.zeros(nblocks, dtype=np.bool_)
    fallen = np.empty(nblocks, dtype=np.int64)
    for j in range(demands.shape[0]):
        r0 = demands[j, 0]
        r1 = demands[j, 1]
        r2 = demands[j, 2]
        c = slot_of[j]
        if c < 0:
            once = scratch[5]
            score_all(
                r0, r1, r2, free, u, wt, capb, m0, alive,
                pb, q1, q2, shared, b, o1, o2, weight, scratch, once,
            )  # fmt: skip
            i = _argmax(once, 0, n)
        else:
            s = scores[c]
            if not valid[c]:
                score_all(
                    r0, r1, r2, free, u, wt, capb, m0, alive,
                    pb, q1, q2, shared, b, o1, o2, weight, scratch, s,
                )  # fmt: skip
                for blk in range(nblocks):
                    lo = blk << BLOCK_SHIFT
                    block_best[c, blk] = _argmax(s, lo, min(lo + BLOCK, n))
                valid[c] = True
            else:
                # Catch up with the nodes placed on since this slot's last use.
                tick = state[1] + 1
                state[1] = tick
                nfell = 0
                for e in range(seen_upto[c], state[0]):
                    x = log[e]
                    if stamp[x] == tick:
                        continue
                    stamp[x] = tick
                    old = s[x]
                    new = _score(
                        x, r0, r1, r2, cap, alloc, alive, w, m0,
                        pb, q1, q2, shared, b, o1, o2, weight,
                    )  # fmt: skip
                    s[x] = new
                    blk = x >> BLOCK_SHIFT
                    if fell[blk]:
                        continue
                    held = block_best[c, blk]
                    if held == x:
                        if new < old:  # the block's best got worse: rescan the block
                            fell[blk] = True
                            fallen[nfell] = blk
                            nfell += 1
                    elif new > -math.inf and (
                        held < 0 or new > s[held] or (new == s[held] and x < held)
                    ):
                        block_best[c, blk] = x
                for f in range(nfell):
                    blk = fallen[f]
                    fell[blk] = False
                    lo = blk << BLOCK_SHIFT
                    block_best[c, blk] = _argmax(s, lo, min(lo + BLOCK, n))
            seen_upto[c] = state[0]
            i = -1
            best_s = -math.inf
            for blk in range(nblocks):
                held = block_best[c, blk]
                if held >= 0 and s[held] > best_s:
                    i = held
                    best_s = s[held]
        out[j] = i
        if i < 0:
            continue
        alloc[i, 0] += r0
        alloc[i, 1] += r1
        alloc[i, 2] += r2
        _refresh_node(i, cap, alloc, w, free, u, m0, pb, q1, q2, shared, b, o1, o2)
        if state[0] == log.shape[0]:  # log full: every slot rebuilds on its next use
            valid[:] = False
            state[0] = 0
        log[state[0]] = i
        state[0] += 1


__all__ = ["BLOCK", "BLOCK_SHIFT", "place", "refresh_rows", "score_all"]
