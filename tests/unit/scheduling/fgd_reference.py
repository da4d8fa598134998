"""The ``binpack-fgd`` choice as the plain full rescore makes it: the reference.

A frozen copy of the vectorised scorer the fast index must agree with, bit for
bit, whatever later happens to ``scores``: every node scored with numpy for
every demand, ties to the lowest row.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from boson_shared.scheduling.table import FIT_EPSILON

FGD_WEIGHT = 1000.0

Floats = NDArray[np.float64]


def _weights(capacity: Floats) -> Floats:
    has = capacity > 0
    k = has.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.zeros_like(capacity)
    np.divide(1.0, capacity * k, out=out, where=has)
    return out


def _bottleneck(capacity: Floats, points: Floats) -> int:
    mean = points.sum(axis=0) / points.shape[0]
    total = capacity.sum(axis=0)
    share = np.divide(mean, total, out=np.zeros_like(mean), where=total > 0)
    return int(np.argmax(share))


def _stranded(free: Floats, points: Floats, b: int) -> Floats:
    fb = np.maximum(free[:, b], 0.0)
    k = points.shape[0]
    pb = points[:, b : b + 1]
    room: Floats | None = None
    for d in range(free.shape[1]):
        want = points[:, d : d + 1]
        asks = want > 0
        if d == b or not asks.any():
            continue
        avail = np.maximum(free[:, d], 0.0)
        held = np.full((k, free.shape[0]), np.inf)
        np.divide(avail, want, out=held, where=asks)
        room = held if room is None else np.minimum(room, held)
    n = np.floor(room) if room is not None else np.full((k, free.shape[0]), np.inf)
    with np.errstate(invalid="ignore"):
        whole = np.where(np.isinf(n), fb, np.minimum(fb, n * pb))
    usable = np.where((fb < pb) | (n < 1), 0.0, whole)
    total = usable[0]
    for row in usable[1:]:
        total = total + row
    out: Floats = fb - total / k
    return out


def choose(
    capacity: Floats, allocated: Floats, alive: NDArray[np.bool_], demand: Floats, points: Floats
) -> int | None:
    """The row the full rescore picks for ``demand`` (``points``: the typical, not all zero)."""
    w = _weights(capacity)
    u = allocated[:, 0] * w[:, 0] + allocated[:, 1] * w[:, 1] + allocated[:, 2] * w[:, 2]
    after = u + (w[:, 0] * demand[0] + w[:, 1] * demand[1] + w[:, 2] * demand[2])
    b = _bottleneck(capacity, points)
    free = capacity - allocated
    delta = _stranded(free - demand, points, b) - _stranded(free, points, b)
    scaled = np.zeros_like(after)
    np.divide(delta, capacity[:, b], out=scaled, where=capacity[:, b] > 0)
    score = after - FGD_WEIGHT * scaled
    ok = alive & np.all(free + FIT_EPSILON >= demand, axis=1)  # the table's fit rule
    if not ok.any():
        return None
    s = np.where(ok, score, np.nan)
    return int(np.flatnonzero(ok & (s == np.nanmax(s)))[0])


__all__ = ["FGD_WEIGHT", "choose"]
