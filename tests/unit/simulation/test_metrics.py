"""Metric helpers and cluster resizing."""

from __future__ import annotations

import numpy as np
import pytest

from boson.simulation.metrics import makespan_lower_bound, offered_load, weighted_quantile
from boson.simulation.scale import factor_for_load, scale_cluster

from .conftest import cluster, events, workload


def test_weighted_quantile() -> None:
    values = np.array([9.0, 0.0])
    weights = np.array([1.0, 99.0])
    assert weighted_quantile(values, weights, 0.99) == 0.0
    assert weighted_quantile(values, weights, 0.995) == 9.0


def test_offered_load_and_bound() -> None:
    # Work: cpu 2·1·10 + 1·2·20 = 60, mem 2·1·10 + 1·1·20 = 40; arrivals span
    # 0..10 on capacity (3, 4): load 60/30 = 2, 40/40 = 1.
    w = workload([(0, 10, 1, 1, 2, 0), (10, 20, 2, 1, 1, 1)])
    c = cluster((1, 2), (2, 2))
    np.testing.assert_allclose(offered_load(w, c.capacity), [2.0, 1.0, 0.0])
    # Bound: max(10 + 20 − 0, 60 / 3) = 30.
    assert makespan_lower_bound(w, c.capacity) == 30.0
    assert factor_for_load(w, c, 0.5) == pytest.approx(4.0)


def test_scaling_keeps_failing_nodes() -> None:
    c = cluster((1, 1), (2, 2), (3, 3))
    ev = events((5, 2, False), (10, 2, True))
    bigger, same = scale_cluster(c, ev, 2.0)
    assert bigger.node_ids == ("n0", "n1", "n2", "n0~1", "n1~1", "n2~1")
    assert same is ev
    smaller, moved = scale_cluster(c, ev, 0.34)
    assert smaller.node_ids == ("n2",)
    assert moved.node.tolist() == [0, 0]
