"""Balancing helpers: power-of-two choices, imbalance, clean fits and recovery plans."""

from __future__ import annotations

import numpy as np
import pytest

from boson_shared.scheduling.balancing import (
    QueuedTask,
    fits_cleanly,
    imbalance,
    plan_recovery,
    power_of_two_choices,
)
from boson_shared.scheduling.placement import NodeTable, Placer


def test_power_of_two_choices_prefers_the_less_loaded_of_two() -> None:
    load = np.array([0.9, 0.1, 0.5, 0.1])
    picks = [power_of_two_choices(4, load, np.random.default_rng(s)) for s in range(200)]
    assert 0 not in picks  # the busiest always loses its duel
    assert set(picks) <= {1, 2, 3}
    assert power_of_two_choices([2], load, np.random.default_rng(0)) == 2
    sub = [power_of_two_choices([0, 2], load, np.random.default_rng(s)) for s in range(20)]
    assert set(sub) == {2}
    with pytest.raises(ValueError, match="at least one"):
        power_of_two_choices([], load, np.random.default_rng(0))
    again = [power_of_two_choices(4, load, np.random.default_rng(s)) for s in range(200)]
    assert again == picks  # deterministic given the rng


def test_imbalance_is_the_coefficient_of_variation() -> None:
    assert imbalance(np.array([0.5, 0.5, 0.5])) == 0
    assert imbalance(np.array([0.2, 0.6])) == pytest.approx(0.2 / 0.4)
    assert imbalance(np.array([[0.2, 0.1], [0.3, 0.6]])) == pytest.approx(0.2 / 0.4)  # busiest dim
    assert imbalance(np.array([])) == 0
    assert imbalance(np.zeros(3)) == 0


def cluster() -> NodeTable:
    table = NodeTable()
    for name in ("hot", "warm", "cold"):
        table.upsert(name, (10, 10, 0), allocated=(4, 4, 0))
    return table


def test_recovery_replaces_a_dead_nodes_queue() -> None:
    table = cluster()
    table.set_alive("hot", False)
    queued = [
        QueuedTask("a", "hot", (6, 6, 0)),
        QueuedTask("b", "hot", (6, 6, 0)),
        QueuedTask("c", "hot", (7, 7, 0)),
        QueuedTask("d", "hot", (11, 1, 0)),
    ]
    plan = plan_recovery(queued, table, Placer(table, "binpack"))
    assert [(r.task_id, r.to_node, r.status) for r in plan] == [
        ("a", "warm", "placed"),
        ("b", "cold", "placed"),
        ("c", None, "waiting"),
        ("d", None, "never"),
    ]
    with pytest.raises(ValueError, match="alive"):
        plan_recovery([QueuedTask("e", "warm", (1, 1, 0))], table, Placer(table))


def test_dispatch_order_smallest_pending_job_first_with_an_age_guard() -> None:
    from boson_shared.scheduling.balancing import dispatch_order

    # Queue (oldest first): job a (5 + 4 instances pending → 9), job b (2),
    # job c (3, waited 500 s ≥ 450: goes before every young entry), and a
    # dead node's re-placement of job a (urgent: first of all).
    order = dispatch_order(
        jobs=["a", "b", "a", "c", "a"],
        counts=[5, 2, 4, 3, 1],
        waited=[100.0, 50.0, 40.0, 500.0, 0.0],
        urgent=[False, False, False, False, True],
        age_limit=450.0,
    )
    # pending: a = 10, b = 2 → urgent 4, aged 3, then b (2), then a's in queue order.
    assert order == [4, 3, 1, 0, 2]


def test_a_clean_fit_leaves_room_for_typical_tasks_or_fills_a_stranded_remnant() -> None:
    # Typical task (2 cpu, 2 memory); memory (index 1) is the bottleneck
    # looked at. Placing (3, 3):
    # - free (8, 8) → (5, 5): two typical tasks still fit, 1 memory left over
    #   either way (m = 8 - 4·2 = 0 before, 5 - 2·2 = 1 after): it strands → no;
    # - free (7, 7) → (4, 4): m goes 1 → 0: clean;
    # - free (4, 4) → (1, 1): m goes 0 → 1 (less than a typical task): no;
    # - free (3, 3) → (0, 0): fills it exactly: clean;
    # - free (2, 9) does not fit the demand: no;
    # - free (3.5, 3.5) → (0.5, 0.5): the remnant was stranded already
    #   (m 3.5 → 0.5): clean.
    free = np.array(
        [[8.0, 8.0, 0], [7.0, 7.0, 0], [4.0, 4.0, 0], [3.0, 3.0, 0], [2.0, 9.0, 0], [3.5, 3.5, 0]]
    )
    typical = np.array([2.0, 2.0, 0.0])
    clean = fits_cleanly(free, np.array([3.0, 3.0, 0.0]), typical, 1)
    assert clean.tolist() == [False, True, False, True, False, True]
    # With no estimate yet nothing is a clean fit: callers fall back to any fit.
    assert not fits_cleanly(free, np.array([3.0, 3.0, 0.0]), np.zeros(3), 1).any()
