"""``binpack-fgd``: binpack that first of all does not strand the bottleneck resource."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.scheduling.fgd_scoring import (
    FGD_WEIGHT,
    bottleneck,
    fgd_points,
    fgd_row_score,
    stranded_bottleneck,
)
from boson_shared.scheduling.identical_runs import place_run
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.scores import Strategy, choose, raw_scores
from boson_shared.scheduling.table import NodeTable
from boson_shared.scheduling.typical_demand import LongRunDemand

TYPICAL = np.array([1.0, 2.0, 0.0])
"""A typical task in the hand-computed cases: 1 cpu, 2 memory."""


def test_the_bottleneck_is_the_dimension_a_typical_task_needs_most_of() -> None:
    cap = np.array([[64.0, 100.0, 0.0], [64.0, 100.0, 0.0]])
    # cpu share 1/128, memory share 2/200: memory
    assert bottleneck(cap, TYPICAL) == 1
    assert bottleneck(cap, np.array([4.0, 2.0, 0.0])) == 0
    assert bottleneck(np.array([[16.0, 16.0, 0.0]]), np.array([1.0, 1.0, 0.0])) == 0  # tie: lowest


@pytest.mark.parametrize(
    ("free", "stranded"),
    [
        ((10.0, 20.0, 0.0), 0.0),  # room for 10 typical tasks on cpu, 10 on memory: none
        ((10.0, 25.0, 0.0), 5.0),  # cpu room for 10 → 20 usable, 5 stranded
        ((3.5, 20.0, 0.0), 14.0),  # cpu room for 3 → 6 usable
        ((0.5, 20.0, 0.0), 20.0),  # no typical task fits the cpu: all stranded
        ((10.0, 1.5, 0.0), 1.5),  # a remnant smaller than one typical task
        ((10.0, 0.0, 0.0), 0.0),  # nothing left: nothing stranded
    ],
)
def test_stranded_bottleneck_by_hand(free: tuple[float, ...], stranded: float) -> None:
    got = stranded_bottleneck(np.array([free]), TYPICAL, 1)
    assert got.tolist() == [stranded]


def two_nodes() -> NodeTable:
    table = NodeTable()
    table.upsert("n0", (16, 16, 0), allocated=(14, 4, 0))  # cpu nearly full
    table.upsert("n1", (16, 16, 0), allocated=(4, 8, 0))
    return table


def test_binpack_fgd_does_not_fill_the_cpu_of_a_node_with_memory_left() -> None:
    # A (2, 1) task. binpack: n0 ends at (16/16 + 5/16)/2 = 21/32, n1 at
    # (6/16 + 9/16)/2 = 15/32 → n0, whose cpu it fills: 11 memory stranded.
    # binpack-fgd, typical (1, 2): memory is the bottleneck (2/32 > 1/32).
    # n0's free (2, 12) holds 2 typical tasks on cpu, so 12 - 2·2 = 8 memory
    # is stranded before, all 11 after: 21/32 - FGD_WEIGHT · 3/16. n1's
    # (12, 8) → (10, 7) strands nothing either side: 15/32.
    table = two_nodes()
    assert Placer(table, "binpack").choose((2, 1, 0)) == 0
    placer = Placer(table, "binpack-fgd")
    placer.typical.points = TYPICAL[None, :].copy()
    scores = placer.score((2, 1, 0))
    np.testing.assert_allclose(scores, [21 / 32 - FGD_WEIGHT * 3 / 16, 15 / 32])
    assert placer.choose((2, 1, 0)) == 1


def test_binpack_fgd_fills_a_remnant_first() -> None:
    # n0 has (8, 1.5) free: 1.5 memory, less than one typical task, stranded.
    # n1 has (1, 8): one typical task fits its cpu, 8 - 2 = 6 stranded.
    # A (1, 1) task: n0's remnant shrinks to 0.5 (a gain of 1/16 × FGD_WEIGHT);
    # on n1 it would use the last cpu and strand all 7 memory left.
    table = NodeTable()
    table.upsert("n0", (16, 16, 0), allocated=(8, 14.5, 0))
    table.upsert("n1", (16, 16, 0), allocated=(15, 8, 0))
    placer = Placer(table, "binpack-fgd")
    placer.typical.points = TYPICAL[None, :].copy()
    scores = placer.score((1, 1, 0))
    assert scores[0] == pytest.approx((9 / 16 + 15.5 / 16) / 2 + FGD_WEIGHT / 16)
    assert scores[1] == pytest.approx((16 / 16 + 9 / 16) / 2 - FGD_WEIGHT / 16)
    assert placer.choose((1, 1, 0)) == 0


def test_with_demand_points_stranding_is_the_mean_over_them() -> None:
    # free (12, 2.5) against typical memory 2, 3 and 4 (cpu 1 each): the cpu
    # holds 12 of any, so only the memory remnant counts. 2.5 holds one task
    # of the first point (all 2.5 usable) and none of the others (0 usable):
    # stranded 2.5 - (2.5 + 0 + 0) / 3 = 5/3.
    points = np.array([[1.0, 2.0, 0.0], [1.0, 3.0, 0.0], [1.0, 4.0, 0.0]])
    got = stranded_bottleneck(np.array([[12.0, 2.5, 0.0], [12.0, 4.5, 0.0]]), points, 1)
    np.testing.assert_allclose(got, [5 / 3, 0.0])
    assert stranded_bottleneck(np.array([[12.0, 2.5, 0.0]]), points[:1], 1).tolist() == [0.0]
    # A point asking no cpu is held back by nothing but its memory: 2.5 holds
    # the (0, 2) task; the (1, 3) one does not fit. (2.5 + 0) / 2 usable.
    mixed = np.array([[0.0, 2.0, 0.0], [1.0, 3.0, 0.0]])
    assert stranded_bottleneck(np.array([[12.0, 2.5, 0.0]]), mixed, 1).tolist() == [1.25]


def test_binpack_fgd_keeps_a_remnant_larger_tasks_can_use() -> None:
    # n0 (4, 11.5) and n1 (4, 6) allocated of 16; a (1, 2) task. Against the
    # median (1, 2) alone, n0's remnant 4.5 → 2.5 still holds one typical
    # task: nothing stranded either side, binpack's fuller n0 wins. Against
    # the points 2, 3, 4 of memory, n0 goes from 0 stranded to 5/3 (see
    # above), n1 (10 → 8) from 0 to 0: n0 scores 18.5/32 - FGD_WEIGHT ·
    # (5/3)/16 and n1, binpack's 13/32, wins.
    table = NodeTable()
    table.upsert("n0", (16, 16, 0), allocated=(4, 11.5, 0))
    table.upsert("n1", (16, 16, 0), allocated=(4, 6, 0))
    placer = Placer(table, "binpack-fgd")
    placer.typical.points = np.array([[1.0, 2.0, 0.0]])
    assert placer.choose((1, 2, 0)) == 0
    placer.typical.points = np.array([[1.0, 2.0, 0.0], [1.0, 3.0, 0.0], [1.0, 4.0, 0.0]])
    np.testing.assert_allclose(
        placer.score((1, 2, 0)), [18.5 / 32 - FGD_WEIGHT * (5 / 3) / 16, 13 / 32]
    )
    assert placer.choose((1, 2, 0)) == 1


def test_long_run_demand_offers_its_quartiles_as_points() -> None:
    typical = LongRunDemand()
    for memory in (5.0, 1.0, 4.0, 2.0, 3.0):
        typical.observe(np.array([1.0, memory, 0.0]))
    typical.refresh()
    # Quartiles of 1..5, interpolated: 2, 3, 4.
    assert typical.points.tolist() == [[1.0, 2.0, 0.0], [1.0, 3.0, 0.0], [1.0, 4.0, 0.0]]
    assert typical.value.tolist() == [1.0, 3.0, 0.0]


def test_without_an_estimate_the_demand_itself_is_the_typical_task() -> None:
    table = two_nodes()
    placer = Placer(table, "binpack-fgd")
    assert not placer.typical.value.any()
    fresh = raw_scores(table, "binpack-fgd", np.array([2.0, 1.0, 0.0]))
    given_ = raw_scores(table, "binpack-fgd", np.array([2.0, 1.0, 0.0]), np.array([2.0, 1.0, 0]))
    assert fresh.tolist() == given_.tolist()


def test_long_run_demand_refreshes_as_placements_double_then_every_refresh() -> None:
    typical = LongRunDemand(window=8, refresh_every=4)
    typical.refresh()
    assert typical.value.tolist() == [0.0, 0.0, 0.0]  # nothing seen
    typical.observe(np.array([1.0, 2.0, 0.0]))
    typical.refresh()
    assert typical.value.tolist() == [1.0, 2.0, 0.0]  # from the first placement on
    typical.observe(np.array([3.0, 4.0, 0.0]))
    typical.refresh()  # 1 new after 1 seen: doubled
    assert typical.value.tolist() == [2.0, 3.0, 0.0]
    typical.observe(np.array([3.0, 4.0, 0.0]))
    typical.refresh()  # 1 new after 2: not yet
    assert typical.value.tolist() == [2.0, 3.0, 0.0]
    typical.observe(np.array([3.0, 4.0, 0.0]))
    typical.refresh()  # 2 new after 2
    assert typical.value.tolist() == [3.0, 4.0, 0.0]


def test_long_run_demand_remembers_the_whole_history_not_the_last_run() -> None:
    # 3,000 small instances, then 1,000 large ones: a window of the last 1,024
    # would say "large"; a uniform sample of all 4,000 keeps the small median.
    typical = LongRunDemand(window=1024, refresh_every=1)
    typical.observe(np.array([1.0, 1.0, 0.0]), 3000)
    typical.observe(np.array([9.0, 9.0, 0.0]), 1000)
    typical.refresh()
    assert typical.value.tolist() == [1.0, 1.0, 0.0]
    again = LongRunDemand(window=1024, refresh_every=1)
    again.observe(np.array([1.0, 1.0, 0.0]), 3000)
    again.observe(np.array([9.0, 9.0, 0.0]), 1000)
    assert np.array_equal(again._buf, typical._buf)  # seeded: deterministic


def test_long_run_demand_observes_one_at_a_time_as_it_does_in_bulk() -> None:
    # One instance at a time (the balancer's holds) takes the fast path; it
    # must sample exactly as a bulk observe does, past the window too.
    bulk = LongRunDemand(window=64, refresh_every=1)
    single = LongRunDemand(window=64, refresh_every=1)
    for k, count in enumerate([40, 30, 500, 7]):
        demand = np.array([k + 1.0, 2.0 * k, 0.0])
        bulk.observe(demand, count)
        for _ in range(count):
            single.observe(demand)
    assert np.array_equal(single._buf, bulk._buf)
    bulk.refresh()
    single.refresh()
    assert single.value.tolist() == bulk.value.tolist()


row = st.tuples(
    st.sampled_from([8.0, 16.0, 64.0]),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)


point = st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([0.0]) | st.floats(1e-4, 0.03))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(row, min_size=1, max_size=6),
    demand=st.tuples(st.sampled_from([0.4, 0.5, 1.0, 2.0]), st.floats(0.001, 0.05)),
    typical=st.lists(point, min_size=1, max_size=4),
)
def test_the_scalar_twin_scores_bit_for_bit_as_the_vectors(
    rows: list[tuple[float, float, float]],
    demand: tuple[float, float],
    typical: list[tuple[float, float]],
) -> None:
    table = NodeTable()
    for i, (cpu, used_cpu, used_mem) in enumerate(rows):
        cap = (cpu, cpu / 64, 0.0)
        table.upsert(f"n{i}", cap, allocated=(cpu * used_cpu, cap[1] * used_mem, 0.0))
    d = np.array([demand[0], demand[1], 0.0])
    # One to four demand points, some asking nothing of a dimension; none at all: the demand.
    typ = np.array([(c, m, 0.0) for c, m in typical])
    if not typ.any():
        typ = d[None, :]
    vector = raw_scores(table, "binpack-fgd", d, typ)
    b = bottleneck(table.capacity, typ)
    for i in range(len(rows)):
        cap, alloc = table.capacity[i].tolist(), table.allocated[i].tolist()
        scalar = fgd_row_score(cap, alloc, d.tolist(), fgd_points(typ.tolist(), b), b)
        assert scalar == vector[i]


def test_a_batch_places_as_one_by_one_with_a_settled_estimate() -> None:
    rng = np.random.default_rng(3)
    cap = rng.choice([8.0, 16.0, 64.0], size=(30, 1)) * np.array([[1.0, 0.01, 0.0]])
    alloc = cap * rng.uniform(0, 1, size=cap.shape)
    tables = (NodeTable(), NodeTable())
    for t in tables:
        for i in range(30):
            t.upsert(f"n{i}", cap[i], allocated=alloc[i])
    placers = [Placer(t, "binpack-fgd") for t in tables]
    for p in placers:  # an estimate that no refresh changes during the test
        p.typical.observe(np.array([0.5, 0.0085, 0.0]), 1 << 20)
        p.typical.refresh()
    demand = np.array([1.0, 0.0054, 0.0])
    batch = placers[0].place_batch(np.repeat(demand[None], 60, axis=0)).indices.tolist()
    one_by_one = [placers[1].place(demand).index for _ in range(60)]
    assert batch == [-1 if i is None else i for i in one_by_one]
    np.testing.assert_array_equal(tables[0].allocated, tables[1].allocated)


@pytest.mark.parametrize("strategy", ["binpack-fgd", "tetris", "balanced"])
@pytest.mark.parametrize("k", [1, 3, 7, 40])
def test_a_short_run_among_many_tied_nodes_places_as_one_by_one(strategy: Strategy, k: int) -> None:
    """``place_run`` keeps only the k best nodes; ties at the k-th must not lose the right one."""
    tables = (NodeTable(), NodeTable())
    for t in tables:
        for i in range(12):
            # Pairs of identical nodes: every score is tied with another node's.
            t.upsert(f"n{i}", (8.0, 8.0, 0.0), allocated=(float(i // 2), float(i // 4), 0.0))
    demand = np.array([1.0, 1.0, 0.0])
    typical = np.array([1.0, 1.0, 0.0])
    batch = place_run(tables[0], strategy, demand, k, typical)
    one_by_one: list[int] = []
    for _ in range(k):
        row = choose(tables[1], strategy, demand, typical)
        if row is None:
            break
        tables[1].allocate(row, demand)
        one_by_one.append(row)
    assert batch == one_by_one
    np.testing.assert_array_equal(tables[0].allocated, tables[1].allocated)
