"""End-aware placement: work goes where it extends a node's busy time least, and long
work that a smaller node could hold never takes the last large node expected to free."""

from __future__ import annotations

import numpy as np

from boson_shared.scheduling.horizon import PROTECT_S, NodeHorizon
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.table import NodeTable

DAY = 86_400.0
CAPACITY = np.array([[96.0, 384.0, 8.0], [96.0, 384.0, 8.0], [104.0, 512.0, 2.0]])


def test_long_work_goes_to_the_smallest_node_and_short_work_to_the_strategy() -> None:
    h = NodeHorizon()
    up = np.ones(3, np.bool_)
    fits = np.ones(3, np.bool_)
    small = np.array([12.0, 24.0, 1.0])
    # Ten days' work: only the 2-GPU node, of the three that fit.
    long_end = 10 * DAY
    assert h.candidates(fits, long_end, 0.0, small, CAPACITY, up).tolist() == [False, False, True]
    # An hour's work: all three, the strategy chooses.
    assert h.candidates(fits, 3600.0, 0.0, small, CAPACITY, up).tolist() == [True, True, True]
    # Where the small node does not fit, an 8-GPU one — not the last to free soon.
    h.extend(0, 20 * DAY)
    two = np.array([True, True, False])
    assert h.candidates(two, long_end, 0.0, small, CAPACITY, up).tolist() == [True, False, False]


def test_the_last_large_node_to_free_soon_is_kept_from_long_small_work() -> None:
    h = NodeHorizon()
    up = np.ones(3, np.bool_)
    h.extend(0, 20 * DAY)  # node 0: long work; node 1 frees within the day
    h.extend(1, 0.5 * DAY)
    small = np.array([12.0, 24.0, 1.0])
    long_end = PROTECT_S + DAY
    assert h.barred(small, long_end, 0.0, CAPACITY, up).tolist() == [False, True, False]
    # Short work may take it, and so may work only the large nodes hold.
    assert not h.barred(small, 0.5 * PROTECT_S, 0.0, CAPACITY, up).any()
    whole = np.array([64.0, 256.0, 8.0])
    assert not h.barred(whole, long_end, 0.0, CAPACITY, up).any()
    # Once it has waited PROTECT_S the bar lifts: it waits a bounded time, never for good.
    assert not h.barred(small, long_end, 0.0, CAPACITY, up, waited=PROTECT_S).any()
    # With two large nodes freeing soon, neither is barred.
    h2 = NodeHorizon()
    assert not h2.barred(small, long_end, 0.0, CAPACITY, up).any()


def test_the_placer_keeps_a_long_one_gpu_task_off_the_free_eight_gpu_node() -> None:
    table = NodeTable()
    for i, cap in enumerate(CAPACITY.tolist()):
        table.upsert(f"n{i}", cap)
    placer = Placer(table, "binpack-fgd")
    placer.horizon = NodeHorizon()
    # A month-long 8-GPU task holds node 0; node 2's two GPUs are taken for a month.
    first = placer.place_batch(np.array([[64.0, 256.0, 8.0]]), ends=(0.0, 30 * DAY, 0.0))
    assert first.indices.tolist() == [0]
    second = placer.place_batch(np.array([[20.0, 40.0, 2.0]]), ends=(0.0, 30 * DAY, 0.0))
    assert second.indices.tolist() == [2]
    # A 10-day one-GPU task: node 1 is the last 8-GPU node to free soon, node 0 is full:
    # it waits rather than take node 1.
    third = placer.place_batch(np.array([[12.0, 24.0, 1.0]]), ends=(0.0, 10 * DAY, 0.0))
    assert third.indices.tolist() == [-1]
    # Without end-awareness it would have taken node 1.
    plain = Placer(table, "binpack-fgd")
    assert plain.place_batch(np.array([[12.0, 24.0, 1.0]])).indices.tolist() == [1]


def test_a_large_node_closed_for_a_moment_still_counts() -> None:
    # The simulator's backfill marks reserved nodes down while its placer
    # picks: the node still runs, so node 1 is still the last to keep.
    h = NodeHorizon(up=np.ones(3, np.bool_))
    h.extend(0, 20 * DAY)
    closed = np.array([False, True, True])
    small = np.array([12.0, 24.0, 1.0])
    assert h.barred(small, 2 * PROTECT_S, 0.0, CAPACITY, closed).tolist() == [False, True, False]
