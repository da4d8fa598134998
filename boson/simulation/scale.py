"""Resizing a trace's cluster for a target offered load, keeping its mix and its failures.

Growing a cluster by ``k`` keeps every original machine (with its events)
and adds copies of the machines, cycling through them in order, until there
are ``round(n * k)``. Shrinking is stratified by node shape (capacity on
every resource): each shape keeps its share of the nodes (largest remainder,
ties to shapes with failing machines, then to the more common shape), and
within a shape the machines with events go first, then the others in file
order — never a prefix of the file, which may list one kind of node first
(the GPU trace lists its CPU-only nodes first). Offered load is defined in
:func:`boson.simulation.metrics.offered_load`.

Whole nodes cannot hit every load: :func:`resize_for_load` picks the node
count whose load comes closest, and says how far it is from the target
(:data:`LOAD_TOLERANCE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from boson.simulation.metrics import offered_load
from boson.simulation.table import IntArray
from boson.simulation.trace_types import Cluster, NodeEvents, Workload

LOAD_TOLERANCE: Final = 0.05
"""A resized cluster whose offered load misses the target by more than this
share of it is reported (whole-node granularity on a small cluster)."""


def _shrink_keep(cluster: Cluster, events: NodeEvents, target: int) -> IntArray:
    """Rows kept when shrinking to ``target`` nodes, stratified by shape, sorted."""
    n = len(cluster.node_ids)
    _, shape = np.unique(cluster.capacity, axis=0, return_inverse=True)
    shape = shape.reshape(-1)
    counts = np.bincount(shape)
    failing = np.zeros(n, np.bool_)
    failing[np.unique(events.node)] = True
    shape_fails = np.bincount(shape, weights=failing, minlength=counts.size) > 0
    quota = counts * (target / n)
    take = np.floor(quota).astype(np.int64)
    rest = target - int(take.sum())
    if rest > 0:
        remainder = quota - take
        order = np.lexsort((np.arange(counts.size), -counts, ~shape_fails, -remainder))
        take[order[:rest]] += 1
    kept: list[IntArray] = []
    for s, k in enumerate(take.tolist()):
        if k:
            rows = np.flatnonzero(shape == s)
            # Failing machines first (stable: file order within each group).
            rows = rows[np.argsort(~failing[rows], kind="stable")]
            kept.append(rows[:k])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def scale_cluster(
    cluster: Cluster, events: NodeEvents, factor: float
) -> tuple[Cluster, NodeEvents]:
    """The cluster with ``round(n * factor)`` machines (at least one) and its events."""
    if factor <= 0:
        raise ValueError(f"scale factor must be positive, got {factor}")
    n = len(cluster.node_ids)
    return resize_cluster(cluster, events, max(1, round(n * factor)))


def resize_cluster(cluster: Cluster, events: NodeEvents, target: int) -> tuple[Cluster, NodeEvents]:
    """The cluster with ``target`` machines (see the module docstring) and its events."""
    n = len(cluster.node_ids)
    if target >= n:
        extra = np.arange(target - n) % max(n, 1)
        ids = cluster.node_ids + tuple(
            f"{cluster.node_ids[i]}~{1 + j // n}" for j, i in enumerate(extra.tolist())
        )
        capacity = np.concatenate([cluster.capacity, cluster.capacity[extra]])
        return Cluster(ids, capacity), events
    keep = _shrink_keep(cluster, events, max(1, target))
    remap = np.full(n, -1, np.int64)
    remap[keep] = np.arange(keep.size)
    mask = remap[events.node] >= 0
    return (
        Cluster(tuple(cluster.node_ids[i] for i in keep.tolist()), cluster.capacity[keep]),
        NodeEvents(events.time[mask], remap[events.node[mask]], events.up[mask]),
    )


def factor_for_load(workload: Workload, cluster: Cluster, target: float) -> float:
    """The scale factor that brings the bottleneck resource's offered load to ``target``."""
    if target <= 0:
        raise ValueError(f"target load must be positive, got {target}")
    return float(offered_load(workload, cluster.capacity).max()) / target


@dataclass(frozen=True)
class Resized:
    """A cluster resized for a target load, and the load it gives."""

    cluster: Cluster
    events: NodeEvents
    target: float
    load: float
    """The bottleneck resource's offered load on the resized cluster."""

    @property
    def miss(self) -> float:
        """How far the load is from the target, as a share of the target."""
        return abs(self.load - self.target) / self.target

    def warning(self) -> str | None:
        """A line to show when whole nodes miss the target by more than the tolerance."""
        if self.miss <= LOAD_TOLERANCE:
            return None
        return (
            f"warning: {len(self.cluster.node_ids):,} whole nodes give an offered load of "
            f"{self.load:.3f}, not {self.target:.3f} ({self.miss:.0%} off): "
            "too few nodes to hit the target closer"
        )


def resize_for_load(
    workload: Workload, cluster: Cluster, events: NodeEvents, target: float
) -> Resized:
    """Resize for ``target`` bottleneck load: the node count (near the proportional
    estimate) whose resized cluster's load comes closest to it."""
    estimate = len(cluster.node_ids) * factor_for_load(workload, cluster, target)
    if estimate >= len(cluster.node_ids):
        # Growing adds copies in order: the proportional count is the answer.
        grown, grown_events = resize_cluster(cluster, events, max(1, round(estimate)))
        load = float(offered_load(workload, grown.capacity).max())
        return Resized(grown, grown_events, target, load)
    best: Resized | None = None
    low, high = max(1, int(estimate * 0.5)), max(2, int(np.ceil(estimate * 1.5)) + 1)
    for count in range(low, min(high, len(cluster.node_ids)) + 1):
        small, small_events = resize_cluster(cluster, events, count)
        load = float(offered_load(workload, small.capacity).max())
        found = Resized(small, small_events, target, load)
        if best is None or found.miss < best.miss:
            best = found
    assert best is not None
    return best


__all__ = [
    "LOAD_TOLERANCE",
    "Resized",
    "factor_for_load",
    "resize_cluster",
    "resize_for_load",
    "scale_cluster",
]
