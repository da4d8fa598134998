"""Properties of placement that must hold on any cluster (hypothesis).

Small integer capacities and demands make ties and exact fits common, which
is where tie-breaking and feasibility bugs live.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.scheduling import scores
from boson_shared.scheduling.placement import (
    STRATEGIES,
    NodeTable,
    Placer,
    Strategy,
)
from boson_shared.scheduling.placement_outcomes import NEVER, WAITING
from boson_shared.scheduling.typical_demand import TypicalDemand

SETTINGS = settings(max_examples=60, deadline=None)


def frozen_estimate() -> TypicalDemand:
    """A typical-demand estimate that never changes (all zero: each demand is its own)."""
    return TypicalDemand(refresh_every=2**62)


amount = st.integers(min_value=0, max_value=12)
node = st.tuples(
    st.tuples(amount, amount, st.sampled_from([0, 0, 4])),  # capacity
    st.tuples(amount, amount, st.integers(0, 4)),  # allocated (clipped below)
    st.booleans() | st.just(True),  # alive, mostly
)
cluster = st.lists(node, min_size=1, max_size=12)
demand = st.tuples(st.integers(0, 8), st.integers(0, 8), st.sampled_from([0, 0, 0, 1]))
demands = st.lists(demand, min_size=1, max_size=25)
strategy = st.sampled_from(STRATEGIES)


def build(spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]]) -> NodeTable:
    table = NodeTable(initial_capacity=2)
    for i, (cap, alloc, alive) in enumerate(spec):
        table.upsert(f"n{i}", cap, allocated=np.minimum(alloc, cap), alive=alive)
    return table


@SETTINGS
@given(cluster, demands, strategy)
def test_never_on_a_dead_node_nor_beyond_free_capacity(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    ds: list[tuple[int, int, int]],
    strat: Strategy,
) -> None:
    table = build(spec)
    placer = Placer(table, strat)
    for d in ds:
        free_before = table.free().copy()
        placement = placer.place(d)
        if placement.index is not None:
            i = placement.index
            assert table.alive[i]
            assert np.all(free_before[i] >= np.asarray(d))
            assert np.all(table.free()[i] >= 0)


@SETTINGS
@given(cluster, demands, strategy)
def test_batch_equals_one_at_a_time(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    ds: list[tuple[int, int, int]],
    strat: Strategy,
) -> None:
    assert_batch_places_as_one_at_a_time(spec, ds, strat)


def assert_batch_places_as_one_at_a_time(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    ds: list[tuple[int, int, int]],
    strat: Strategy,
) -> tuple[NodeTable, Placer]:
    """``place_batch(ds)`` chooses and allocates as ``place`` row by row; the batch side."""
    one, many = build(spec), build(spec)
    single, batched = Placer(one, strat), Placer(many, strat)
    # A learning strategy's estimate may refresh between single calls and not
    # inside a batch (by design: one estimate per call); the property is that,
    # under the same estimate, a batch places as its rows one at a time.
    single.typical = frozen_estimate()
    batched.typical = frozen_estimate()
    expected = []
    for d in ds:
        p = single.place(d)
        expected.append(p.index if p.index is not None else (WAITING, NEVER)[p.status == "never"])
    batch = batched.place_batch(np.array(ds, dtype=np.float64))
    assert batch.indices.tolist() == expected
    np.testing.assert_array_equal(one.allocated, many.allocated)
    return many, batched


runs = st.lists(st.tuples(demand, st.integers(1, 30)), min_size=1, max_size=6)


@SETTINGS
@given(cluster, runs, strategy)
def test_runs_of_identical_demands_place_as_one_at_a_time(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    rs: list[tuple[tuple[int, int, int], int]],
    strat: Strategy,
) -> None:
    """What a trace replay asks: many instances of one demand in one batch."""
    ds = [d for d, count in rs for _ in range(count)]
    many, batched = assert_batch_places_as_one_at_a_time(spec, ds, strat)
    # The index is left as one built from scratch would be.
    fresh = Placer(many, strat)
    fresh.typical = frozen_estimate()
    for probe in [(1, 1, 0), (4, 2, 0), *(d for d, _ in rs)]:
        assert batched.choose(probe) == fresh.choose(probe)


@SETTINGS
@given(cluster, demands, strategy)
def test_choice_equals_full_rescore(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    ds: list[tuple[int, int, int]],
    strat: Strategy,
) -> None:
    """The incremental index picks exactly what scoring every node picks.

    Strategies that learn a typical demand (``remnant``, ``binpack-fgd``) are
    compared under the estimate the placer holds when it places.
    """
    table, reference = build(spec), build(spec)
    placer = Placer(table, strat)
    for d in ds:
        vec = np.asarray(d, dtype=np.float64)
        placer.typical.refresh()  # what place() does first; idempotent
        # binpack-fgd scores against its demand points, the rest the median.
        estimate = placer.typical.points if strat == "binpack-fgd" else placer.typical.value
        want = scores.choose(reference, strat, vec, estimate)
        assert placer.place(d).index == want
        if want is not None:
            reference.allocate(want, vec)


@SETTINGS
@given(cluster, demand, st.sampled_from(["binpack", "spread"]))
def test_binpack_most_and_spread_least_allocated(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    d: tuple[int, int, int],
    strat: Strategy,
) -> None:
    table = build(spec)
    placer = Placer(table, strat)
    vec = np.asarray(d, dtype=np.float64)
    ok = scores.feasible(table, vec)
    w = scores.weights(table.capacity)
    after = scores.weighted_sum(table.allocated, w) + scores.demand_term(vec, w)
    placement = placer.place(d)
    if not ok.any():
        assert placement.index is None
        return
    assert placement.index is not None
    chosen = after[placement.index]
    if strat == "binpack":
        assert chosen == after[ok].max()
    else:
        assert chosen == after[ok].min()


@SETTINGS
@given(cluster, demand, strategy)
def test_waiting_and_never(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    d: tuple[int, int, int],
    strat: Strategy,
) -> None:
    table = build(spec)
    vec = np.asarray(d, dtype=np.float64)
    fits_now = scores.feasible(table, vec).any()
    fits_ever = np.all(table.capacity >= vec, axis=1).any()
    status = Placer(table, strat).place(d).status
    if fits_now:
        assert status == "placed"
    elif fits_ever:
        assert status == "waiting"
    else:
        assert status == "never"
        # larger than every node's total capacity on some dimension
        assert np.all(np.any(vec > table.capacity, axis=1))


@SETTINGS
@given(cluster, demands, st.sampled_from(["binpack", "spread"]), st.randoms(use_true_random=False))
def test_index_follows_outside_changes(
    spec: list[tuple[tuple[int, ...], tuple[int, ...], bool]],
    ds: list[tuple[int, int, int]],
    strat: Strategy,
    rnd: object,
) -> None:
    """Releases, deaths, revivals and new nodes between placements keep choices exact."""
    import random

    assert isinstance(rnd, random.Random)
    table = build(spec)
    placer = Placer(table, strat)
    for k, d in enumerate(ds):
        i = rnd.randrange(len(table))
        action = rnd.randrange(4)
        if action == 0:
            table.release(i, table.allocated[i] / 2)
        elif action == 1:
            table.set_alive(table.node_ids[i], not table.alive[i])
        elif action == 2:
            table.upsert(f"new{k}", (rnd.randrange(12), rnd.randrange(12), 0))
        vec = np.asarray(d, dtype=np.float64)
        want = scores.choose(table, strat, vec)
        assert placer.place(d).index == want


def test_large_table_incremental_paths_match_full_rescore() -> None:
    """Hundreds of nodes: chunked first fit, bounded search and row moves stay exact.

    Few changes per step, so the index moves, inserts and removes rows one
    by one instead of re-sorting.
    """
    rng = np.random.default_rng(4)
    strats: tuple[Strategy, ...] = ("binpack", "spread")
    for strat in strats:
        table = NodeTable()
        for i in range(600):
            cap = rng.choice([8.0, 10.0, 16.0], size=3) * (rng.random(3) < [1, 1, 0.2])
            table.upsert(f"n{i}", cap, allocated=np.floor(cap * rng.random(3)))
        placer = Placer(table, strat)
        for k in range(400):
            roll = rng.random()
            i = int(rng.integers(len(table)))
            if roll < 0.1:
                table.release(i, table.allocated[i])
            elif roll < 0.13:
                table.set_alive(table.node_ids[i], not table.alive[i])
            elif roll < 0.15:
                table.upsert(f"x{k}", rng.choice([8.0, 12.0], size=3) * [1, 1, 0])
            elif roll < 0.17:
                table.upsert(table.node_ids[i], table.capacity[i] * 2)  # re-weighted
            vec = rng.integers(0, 4, size=3).astype(np.float64) * [1, 1, rng.random() < 0.1]
            want = scores.choose(table, strat, vec)
            assert placer.place(vec).index == want, (strat, k)
