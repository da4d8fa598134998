"""The engine on traces small enough to work out by hand (numbers derived in comments)."""

from __future__ import annotations

import numpy as np
import pytest

from boson.simulation.drainers import Balancer
from boson.simulation.engine import simulate
from boson.simulation.instances import place_instances
from boson.simulation.policies import make_policy
from boson_shared.scheduling.placement import STRATEGIES, Placer
from boson_shared.scheduling.probation import Probation
from boson_shared.scheduling.table import NodeTable

from .conftest import cluster, events, workload

ALL = ["binpack", "binpack+rebalance", "spread", "tetris+rebalance", "first-fit", "k8s-default"]


@pytest.mark.parametrize("name", ALL)
def test_queueing_on_one_node(name: str) -> None:
    # One node (2 cpu, 2 mem). Job 0 at t=0: two instances (1, 1) for 10 s
    # fill it. Job 1 at t=1: one instance (1, 1) for 5 s waits until t=10,
    # ends at 15.  JCT: 10 and 14 → mean 12. Delays (per instance): 0, 0, 9
    # → mean 3, p99 9. Slowdown: 10/10 and 14/5 → mean 1.9. Makespan 15;
    # bound max(max(0+10, 1+5), 0 + (2·10 + 5) / 2) = 12.5. Over the arrival
    # window [0, 1] the node is full: utilisation 1, nothing stranded, CV 0.
    w = workload([(0, 10, 1, 1, 2, 0), (1, 5, 1, 1, 1, 1)])
    policy = make_policy(name)
    m, rec = simulate(name, w, cluster((2, 2)), events(), policy.placer, policy.drainer(), 1.0)
    assert m.jct_mean == pytest.approx(12.0)
    assert m.jct_p99 == pytest.approx(14.0)
    assert m.delay_mean == pytest.approx(3.0)
    assert m.delay_p99 == pytest.approx(9.0)
    assert m.slowdown_mean == pytest.approx(1.9)
    assert m.makespan == pytest.approx(15.0)
    assert m.makespan_bound == pytest.approx(12.5)
    assert m.utilisation[:2] == pytest.approx((1.0, 1.0))
    assert m.fragmentation == 0.0
    assert m.imbalance_cv == 0.0
    assert m.jain == pytest.approx(1.0)
    assert m.replaced == 0
    assert rec.sample_time[:2] == [0.0, 1.0]


@pytest.mark.parametrize("on_probation", [False, True])
def test_a_node_back_from_failing_is_on_probation(on_probation: bool) -> None:
    # Two nodes (2, 2); n0 fails at t=1 and t=30, back 1 s later each time.
    # A (1, 1) for 40 s at t=5; B (2, 2) for 5 s at t=15.
    # Without probation: A ties on the empty nodes → n0; B → n1 (15–20); at
    # t=30 n0 fails, A restarts on n1 → ends 70. JCT 65 and 5; 1 re-placed.
    # With a 10 s probation: n0 takes nothing new on 2–12, so A → n1 (5–45);
    # B fits only n0, trusted again since t=12 (15–20); n0 fails empty at 30
    # and is back on probation for 20 s (its second failure). JCT 40 and 5.
    w = workload([(5, 40, 1, 1, 1, 0), (15, 5, 2, 2, 1, 1)])
    ev = events((1, 0, False), (2, 0, True), (30, 0, False), (31, 0, True))
    policy = make_policy("binpack+rebalance")
    probation = Probation(base_s=10.0, max_share=1.0) if on_probation else None
    m, rec = simulate(
        "b", w, cluster((2, 2), (2, 2)), ev, policy.placer, policy.drainer(), 1.0, probation
    )
    assert m.replaced == (0 if on_probation else 1)
    assert rec.last_end.tolist() == ([45.0, 20.0] if on_probation else [70.0, 20.0])
    assert m.jct_mean == pytest.approx(22.5 if on_probation else 35.0)
    if probation is not None:
        assert probation.ends("n0") == 51.0


def test_boson_policies_put_failed_nodes_on_probation_and_baselines_do_not() -> None:
    assert make_policy("binpack+rebalance").probation() is not None
    assert make_policy("binpack-fgd").probation() is not None
    assert make_policy("k8s-default").probation() is None


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(("back_up", "end"), [(15.0, 20.0), (8.0, 18.0)])
def test_failure_forces_replacement(name: str, back_up: float, end: float) -> None:
    # Two nodes (2, 2). One task at t=0 with two instances (2, 2) for 10 s:
    # one per node. n0 fails at t=5: its instance restarts from scratch.
    # Nowhere has room, so it waits for the first capacity to free — n1 at
    # t=10 (end 20), or n0 itself if it is back first (t=8, end 18).
    w = workload([(0, 10, 2, 2, 2, 0)])
    policy = make_policy(name)
    ev = events((5, 0, False), (back_up, 0, True))
    m, _ = simulate(name, w, cluster((2, 2), (2, 2)), ev, policy.placer, policy.drainer(), 1.0)
    assert m.replaced == 1
    assert m.jct_mean == pytest.approx(end)
    assert m.makespan == pytest.approx(end)
    assert m.delay_mean == 0.0  # a re-placement is not queueing delay
    assert m.makespan_bound == pytest.approx(10.0)  # max(10, 2·2·10 / 4)
    assert m.never_placeable == 0


def test_failure_with_room_elsewhere_replaces_at_once() -> None:
    # Three nodes (2, 2); two instances land on two of them; when n0 dies at
    # t=5 its instance moves at once to the idle node and runs 5..15.
    w = workload([(0, 10, 2, 2, 2, 0)])
    for name in ("binpack", "binpack+rebalance", "k8s-default"):
        policy = make_policy(name)
        ev = events((5, 0, False), (605, 0, True))
        c = cluster((2, 2), (2, 2), (2, 2))
        m, _ = simulate(name, w, c, ev, policy.placer, policy.drainer(), 1.0)
        assert m.replaced == 1, name
        assert m.jct_mean == pytest.approx(15.0), name


def test_rebalancing_dispatches_past_a_blocked_head() -> None:
    # One node (4, 4). t=0: A (3, 3) for 10 s and X (1, 1) for 5 s fill it.
    # t=1: B (4, 4) for 1 s waits; t=2: C (1, 1) for 1 s waits behind it.
    # X ends at t=5. Without rebalancing the head B does not fit and C stays
    # behind it: B runs 10..11, C 11..12 (delay 9). With rebalancing the
    # balancer's window finds C fits: C runs 5..6 (delay 3), B 10..11.
    w = workload([(0, 10, 3, 3, 1, 0), (0, 5, 1, 1, 1, 1), (1, 1, 4, 4, 1, 2), (2, 1, 1, 1, 1, 3)])
    c = cluster((4, 4))
    out = {}
    for name in ("binpack", "binpack+rebalance"):
        policy = make_policy(name)
        m, _ = simulate(name, w, c, events(), policy.placer, policy.drainer(), 1.0)
        out[name] = m
    plain, balanced = out["binpack"], out["binpack+rebalance"]
    # JCT: A 10, X 5, B 10, C 10 (plain) or 4 (rebalanced).
    assert plain.jct_mean == pytest.approx((10 + 5 + 10 + 10) / 4)
    assert balanced.jct_mean == pytest.approx((10 + 5 + 10 + 4) / 4)
    assert plain.delay_mean == pytest.approx((0 + 0 + 9 + 9) / 4)
    assert balanced.delay_mean == pytest.approx((0 + 0 + 9 + 3) / 4)


def test_never_placeable_is_counted_not_run() -> None:
    w = workload([(0, 10, 1, 1, 1, 0), (0, 10, 5, 1, 3, 1)])
    policy = make_policy("binpack")
    m, _ = simulate("b", w, cluster((2, 2)), events(), policy.placer, policy.drainer(), 1.0)
    assert m.never_placeable == 3
    assert m.jct_mean == pytest.approx(10.0)


def test_fragmentation_and_imbalance_by_hand() -> None:
    # Two nodes (4, 4); median instance (1, 1). t=0: one instance (3.5, 3.5)
    # for 10 s. binpack and spread both put it on n0 (first in tie order):
    # n0 has 0.5 free (cannot host (1, 1): stranded), n1 4 free. Stranded
    # memory 0.5 of capacity 8 → 0.0625. Dominant shares 0.875 and 0 → CV 1,
    # Jain 0.875² / (2 · 0.875²) = 0.5. The window is [0, 1] (t=1 is a second
    # arrival of (1, 1) which spread and binpack place differently).
    w = workload([(0, 10, 3.5, 3.5, 1, 0), (1, 1, 1, 1, 1, 1), (1, 1, 1, 1, 1, 2)])
    policy = make_policy("binpack")
    c = cluster((4, 4), (4, 4))
    _, rec = simulate("b", w, c, events(), policy.placer, policy.drainer(), 1.0)
    assert rec.fragmentation[0] == pytest.approx(0.0625)
    assert rec.cv[0] == pytest.approx(1.0)
    assert rec.jain[0] == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["binpack", "spread+rebalance"])
def test_fragmentation_parts_by_hand(name: str) -> None:
    # Two nodes (4, 4). t=0: A (4 cpu, 1 mem) goes to n0 (empty tie: lowest
    # index), B (1, 3) only fits n1. t=2: C (1, 2.5) fits nowhere and waits.
    # Median instance of A, B, C: (1, 2.5); memory is the bottleneck (work
    # cpu 60, memory 65, capacity 8 each). n0 keeps (0, 3) free: no core for
    # the median, 3 memory stranded though memory is not what it lacks. n1
    # keeps (3, 1): 1 memory stranded, short of memory. Each sample of the
    # window [0, 2]: 4 / 8 = 0.5 stranded, 3 / 8 = 0.375 of it short of
    # another resource. Only the sample at t=2 has work waiting: 0.5 / 3.
    w = workload([(0, 10, 4, 1, 1, 0), (0, 10, 1, 3, 1, 1), (2, 10, 1, 2.5, 1, 2)])
    policy = make_policy(name)
    c = cluster((4, 4), (4, 4))
    m, rec = simulate(name, w, c, events(), policy.placer, policy.drainer(), 1.0)
    assert rec.fragmentation[:3] == pytest.approx([0.5, 0.5, 0.5])
    assert m.fragmentation == pytest.approx(0.5)
    assert m.fragmentation_other_short == pytest.approx(0.375)
    assert m.fragmentation_waiting == pytest.approx(0.5 / 3)


def test_step_is_deterministic_and_equals_one_at_a_time() -> None:
    # The pure step: the same table state and request give the same nodes,
    # and a batch equals placing the instances one by one (the scheduler's
    # path), so a running scheduler can be held to the simulator.
    rng = np.random.default_rng(3)
    caps = rng.uniform(4, 8, size=(20, 2))
    used = caps * rng.uniform(0, 0.9, size=(20, 1))

    def table() -> NodeTable:
        t = NodeTable()
        for i in range(20):
            t.upsert(f"n{i}", (*caps[i], 0), allocated=(*used[i], 0))
        return t

    demand = np.array([0.7, 0.9, 0.0])
    for strategy in STRATEGIES:
        a, b, c = table(), table(), table()
        got_a = place_instances(Placer(a, strategy), a, demand, 25)
        got_b = place_instances(Placer(b, strategy), b, demand, 25)
        one = Placer(c, strategy)
        singles = [one.place(demand).index for _ in range(25)]
        assert got_a.tolist() == got_b.tolist()
        assert got_a.tolist() == [i for i in singles if i is not None]
        np.testing.assert_array_equal(a.allocated, c.allocated)


@pytest.mark.parametrize(("age_limit", "starts"), [(450.0, [0, 0, 7, 5]), (3.0, [0, 0, 5, 6])])
def test_the_balancer_gives_a_freed_hole_to_what_fills_it_cleanly(
    age_limit: float, starts: list[float]
) -> None:
    # One node (10, 10). t=0, job 0: five instances of (2, 2) fill it, two of
    # them for 5 s. t=1, job 1: S (3, 3), 1 s; t=2, job 2: two of L (4, 4),
    # 1 s each; both wait. The balancer learnt the typical demand from the
    # arrivals: the median of 2, 2, 2, 2, 2, 3, 4, 4 is (2, 2). At t=5, (4, 4)
    # frees. Smallest pending job first offers it to S, which would leave
    # (1, 1): less than a typical task, stranded. One L fills it exactly, so
    # the clean-fit pass gives it to L (5..6), then to the other L (6..7),
    # and S runs 7..8. Work past the age limit (3 s here: S has waited 4 at
    # t=5) takes any room in that pass, so S runs 5..6 and the Ls 6..7, 7..8.
    w = workload([(0, 10, 2, 2, 3, 0), (0, 5, 2, 2, 2, 0), (1, 1, 3, 3, 1, 1), (2, 1, 4, 4, 2, 2)])
    policy = make_policy("binpack+rebalance")
    _, rec = simulate(
        "b", w, cluster((10, 10)), events(), policy.placer, Balancer(age_limit=age_limit), 1.0
    )
    assert rec.first_start.tolist() == starts
