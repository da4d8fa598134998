"""Placing a run of identical demands as sequential full rescores would, without doing them.

:func:`place_run` places ``k`` identical demands as ``k`` sequential full
rescores would (any strategy without the sorted index: ``balanced``,
``tetris``, ``remnant``, ``binpack-fgd``), without doing them: it scores
every node once, then keeps a heap keyed (−score, index) of the ``k`` best
nodes (with ties) in which only the node just chosen is rescored — through
the same formula on that one row, with its allocation accumulated one demand
at a time, so the choice is bit-for-bit the sequential one.
"""

from __future__ import annotations

import heapq

import numpy as np

from boson_shared.scheduling.fgd_scoring import bottleneck, fgd_points, fgd_row_score, fgd_typical
from boson_shared.scheduling.scores import Strategy, raw_scores
from boson_shared.scheduling.table import FIT_EPSILON, NDIM, FloatArray, NodeTable


def place_run(
    table: NodeTable, strategy: Strategy, demand: FloatArray, k: int, typical: FloatArray
) -> list[int]:
    """Place up to ``k`` copies of ``demand`` by full-rescore rules; commits, returns the rows.

    Fewer than ``k`` rows come back when the cluster runs out of room.
    """
    cap = table.capacity
    fits = table.feasible(demand)
    feasible = np.flatnonzero(fits)
    if feasible.size == 0 or k <= 0:
        return []
    score = raw_scores(table, strategy, demand, typical)
    cost = -score[feasible]
    if k < feasible.size:
        # k placements choose among the k best nodes at most: until each of the
        # k best has been chosen once (its score only changes then), one of
        # them outranks every other node. Keeping the ties at the k-th cost
        # keeps that set whatever the index tie-break; the heap is k long, not n.
        keep = cost <= np.partition(cost, k - 1)[k - 1]
        cost, feasible = cost[keep], feasible[keep]
    heap = list(zip(cost.tolist(), feasible.tolist(), strict=True))
    heapq.heapify(heap)
    if strategy == "binpack-fgd":
        return _place_run_fgd(table, demand, k, typical, heap)
    # A scratch table of one row: the chosen node rescored with the very formula above.
    one = NodeTable(1)
    one.upsert("row", np.zeros(NDIM))
    alloc: dict[int, FloatArray] = {}
    chosen: list[int] = []
    while heap and len(chosen) < k:
        i = heap[0][1]
        row = alloc.get(i)
        if row is None:
            row = alloc[i] = table.allocated[i].copy()
        chosen.append(i)
        row += demand
        if not np.all(cap[i] - row + FIT_EPSILON >= demand):
            heapq.heappop(heap)
            continue
        one.capacity[0] = cap[i]
        one.allocated[0] = row
        value = float(raw_scores(one, strategy, demand, typical)[0])
        heapq.heapreplace(heap, (-value, i))
    for i, row in alloc.items():
        table.set_allocated(table.node_ids[i], row)
    return chosen


def _place_run_fgd(
    table: NodeTable,
    demand: FloatArray,
    k: int,
    typical: FloatArray,
    heap: list[tuple[float, int]],
) -> list[int]:
    """:func:`place_run` for ``binpack-fgd``: the chosen node rescored in plain floats."""
    cap = table.capacity
    typ = fgd_typical(demand, typical)
    b = bottleneck(cap, typ)  # of the whole table, as the vectorised scores use
    d = demand.tolist()
    t = fgd_points(np.atleast_2d(typ).tolist(), b)
    alloc: dict[int, list[float]] = {}
    caps: dict[int, list[float]] = {}
    chosen: list[int] = []
    while heap and len(chosen) < k:
        i = heap[0][1]
        row = alloc.get(i)
        if row is None:
            row = alloc[i] = table.allocated[i].tolist()
            caps[i] = cap[i].tolist()
        c = caps[i]
        chosen.append(i)
        # The same accumulation as the numpy row (``row += demand``), element by element.
        row[0] += d[0]
        row[1] += d[1]
        row[2] += d[2]
        eps = FIT_EPSILON
        if not (
            c[0] - row[0] + eps >= d[0]
            and c[1] - row[1] + eps >= d[1]
            and c[2] - row[2] + eps >= d[2]
        ):
            heapq.heappop(heap)
            continue
        heapq.heapreplace(heap, (-fgd_row_score(c, row, d, t, b), i))
    for i, row in alloc.items():
        table.set_allocated(table.node_ids[i], np.asarray(row, dtype=np.float64))
    return chosen


__all__ = ["place_run"]
