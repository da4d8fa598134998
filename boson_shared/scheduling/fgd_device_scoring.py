"""``binpack-fgd`` on a table with GPU devices whose bottleneck is the GPU.

There ``m``, the stranded bottleneck of ``binpack-fgd``
(:mod:`~boson_shared.scheduling.fgd_scoring`), is the per-GPU fragmentation
of Weng et al. (:func:`~boson_shared.scheduling.devices.fragmentation`): the
expected idle GPU the typical tasks could not use, device by device, before
and after the demand is placed on the devices the choice rule gives it on
that node. :func:`~boson_shared.scheduling.scores.raw_scores` scores such a
table through :func:`device_fgd_scores`, and
:func:`~boson_shared.scheduling.scores.scores` hides the nodes the demand
does not fit.
"""

from __future__ import annotations

import numpy as np

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.devices import MILLI
from boson_shared.scheduling.fgd_scoring import FGD_WEIGHT
from boson_shared.scheduling.table import FIT_EPSILON, FloatArray, NodeTable

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


__all__ = ["GPU", "device_fgd_scores"]
