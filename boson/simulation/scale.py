"""Resizing a trace's cluster for a target offered load, keeping its failures.

Growing a cluster by ``k`` keeps every original machine (with its events)
and adds copies of the machines, cycling through them in order, until there
are ``round(n * k)``; shrinking keeps the machines that have events first,
then the others in order. Offered load is defined in
:func:`boson.simulation.metrics.offered_load`.
"""

from __future__ import annotations

import numpy as np

from boson.simulation.metrics import offered_load
from boson.simulation.traces import Cluster, NodeEvents, Workload


def scale_cluster(
    cluster: Cluster, events: NodeEvents, factor: float
) -> tuple[Cluster, NodeEvents]:
    """The cluster with ``round(n * factor)`` machines (at least one) and its events."""
    if factor <= 0:
        raise ValueError(f"scale factor must be positive, got {factor}")
    n = len(cluster.node_ids)
    target = max(1, round(n * factor))
    if target >= n:
        extra = np.arange(target - n) % max(n, 1)
        ids = cluster.node_ids + tuple(
            f"{cluster.node_ids[i]}~{1 + j // n}" for j, i in enumerate(extra.tolist())
        )
        capacity = np.concatenate([cluster.capacity, cluster.capacity[extra]])
        return Cluster(ids, capacity), events
    with_events = np.unique(events.node)
    rest = np.setdiff1d(np.arange(n), with_events)
    keep = np.sort(np.concatenate([with_events, rest])[:target])
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


__all__ = ["factor_for_load", "scale_cluster"]
