"""Baseline plug-ins against choices worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from boson.simulation.baselines import FirstFit, KubernetesDefault, RandomFit, RoundRobin
from boson_shared.scheduling.table import NodeTable


def _table(*allocated: tuple[float, float], cap: float = 10.0) -> NodeTable:
    t = NodeTable()
    for i, (c, m) in enumerate(allocated):
        t.upsert(f"n{i}", (cap, cap, 0), allocated=(c, m, 0))
    return t


def test_kubernetes_default_scores_by_hand() -> None:
    # Nodes (10, 10): n0 holds (5, 0), n1 (2, 2); pod (1, 1).
    # n0 after: cpu 0.6, mem 0.1 → least ((0.4 + 0.9) / 2)·100 = 65,
    #   balanced (1 − |0.6 − 0.1| / 2)·100 = 75 → 140.
    # n1 after: 0.3, 0.3 → least 70, balanced 100 → 170: n1 wins.
    t = _table((5, 0), (2, 2))
    k8s = KubernetesDefault(t)
    np.testing.assert_allclose(
        k8s._score(t.allocated + np.array([1.0, 1.0, 0.0]), t.capacity), [140, 170]
    )
    assert k8s.place_batch(np.array([[1.0, 1.0, 0.0]])).indices.tolist() == [1]
    np.testing.assert_allclose(t.allocated[1], [3, 3, 0])


def test_kubernetes_default_batch_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    used = rng.uniform(0, 6, size=(12, 2))
    demand = np.array([[0.5, 0.8, 0.0]] * 30)
    batch = KubernetesDefault(_table(*map(tuple, used))).place_batch(demand).indices
    single = KubernetesDefault(_table(*map(tuple, used)))
    one = [int(single.place_batch(demand[:1]).indices[0]) for _ in range(30)]
    assert batch.tolist() == one


def test_first_fit_and_round_robin() -> None:
    # Three empty nodes (10, 10), instances (4, 4): each node fits two.
    demand = np.array([[4.0, 4.0, 0.0]] * 7)
    assert FirstFit(_table((0, 0), (0, 0), (0, 0))).place_batch(demand).indices.tolist() == [
        0, 0, 1, 1, 2, 2, -1,
    ]  # fmt: skip
    rr = RoundRobin(_table((0, 0), (0, 0), (0, 0)))
    assert rr.place_batch(demand[:4]).indices.tolist() == [0, 1, 2, 0]
    assert rr.place_batch(demand[:3]).indices.tolist() == [1, 2, -1]


def test_random_respects_capacity_and_reports_never() -> None:
    t = _table((0, 0), (8, 8), (0, 0))
    got = RandomFit(t, seed=5).place_batch(np.array([[4.0, 4.0, 0.0]] * 6)).indices
    assert sorted(got.tolist()) == [-1, -1, 0, 0, 2, 2]
    assert np.all(t.allocated <= t.capacity)
    assert RandomFit(t).place_batch(np.array([[11.0, 1.0, 0.0]])).indices.tolist() == [-2]


@pytest.mark.parametrize("cls", [FirstFit, RoundRobin, RandomFit, KubernetesDefault])
def test_dead_nodes_get_nothing(cls: type[FirstFit]) -> None:
    t = _table((0, 0), (0, 0))
    t.set_alive("n0", False)
    got = cls(t).place_batch(np.array([[1.0, 1.0, 0.0]] * 3)).indices
    assert got.tolist() == [1, 1, 1]
