"""Tiny hand-made traces, built directly as arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from boson.simulation.trace_types import Cluster, NodeEvents, Workload


def workload(rows: Sequence[tuple[float, float, float, float, int, int]]) -> Workload:
    """Rows of (submit, duration, cpu, memory, instances, job)."""
    arr = np.asarray(rows, np.float64).reshape(-1, 6)
    demand = np.zeros((arr.shape[0], 3))
    demand[:, :2] = arr[:, 2:4]
    return Workload(
        submit=arr[:, 0].copy(),
        duration=arr[:, 1].copy(),
        demand=demand,
        instances=arr[:, 4].astype(np.int64),
        job=arr[:, 5].astype(np.int64),
    )


def cluster(*caps: tuple[float, float]) -> Cluster:
    capacity = np.zeros((len(caps), 3))
    capacity[:, :2] = caps
    return Cluster(tuple(f"n{i}" for i in range(len(caps))), capacity)


def events(*rows: tuple[float, int, bool]) -> NodeEvents:
    if not rows:
        return NodeEvents.empty()
    t, n, up = zip(*rows, strict=True)
    return NodeEvents(np.asarray(t, np.float64), np.asarray(n, np.int64), np.asarray(up, bool))
