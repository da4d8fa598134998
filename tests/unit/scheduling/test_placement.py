"""Placement strategies against scores computed by hand, and the worked example.

The example is ``docs/design.md#worked-example``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from boson_shared.scheduling.placement import (
    RESOURCES,
    STRATEGIES,
    NodeTable,
    Placer,
    ReservationBook,
)
from boson_shared.scheduling.placement_outcomes import NEVER, WAITING
from tests.support.fakes import Clock

WORKED = (350, 400, 300, 250, 200)


def worked_table() -> NodeTable:
    table = NodeTable()
    for i, used in enumerate(WORKED):
        table.upsert(f"n{i}", (500, 500, 0), allocated=(used, used, 0))
    return table


def test_contract_names() -> None:
    assert RESOURCES == ("cpu", "memory", "gpu")
    assert STRATEGIES == ("binpack", "spread", "balanced", "tetris", "remnant", "binpack-fgd")


@pytest.mark.parametrize(
    ("strategy", "demand", "node", "after"),
    [
        ("binpack", 110, "n0", 0.92),  # the 0.8 node cannot fit 110
        ("spread", 110, "n4", 0.62),
        ("binpack", 70, "n1", 0.94),
        ("remnant", 110, "n0", 0.92),
        ("remnant", 70, "n1", 0.94),
        ("binpack-fgd", 110, "n0", 0.92),
        ("binpack-fgd", 70, "n1", 0.94),
    ],
)
def test_worked_example(strategy: str, demand: float, node: str, after: float) -> None:
    table = worked_table()
    placer = Placer(table, strategy)  # type: ignore[arg-type]
    placement = placer.place((demand, demand, 0))
    assert placement.status == "placed"
    assert placement.node_id == node
    i = table.index_of(node)
    assert table.utilisation()[i, :2] == pytest.approx([after, after])


def test_worked_example_scores_by_hand() -> None:
    table = worked_table()
    binpack = Placer(table, "binpack").score((110, 110, 0))
    # mean over cpu and memory of (allocated + 110) / 500; 400 + 110 > 500 does not fit
    expected = [(350 + 110) / 500, math.nan, (300 + 110) / 500, 360 / 500, 310 / 500]
    np.testing.assert_allclose(binpack, expected)
    spread = Placer(table, "spread").score((110, 110, 0))
    np.testing.assert_allclose(spread, [1 - e for e in expected])


def test_explain_worked_example() -> None:
    explanation = Placer(worked_table(), "binpack").explain((110, 110, 0))
    assert explanation.strategy == "binpack"
    by_id = {n.node_id: n for n in explanation.nodes}
    assert not by_id["n1"].fits
    assert by_id["n1"].score is None
    assert by_id["n1"].utilisation_after is None
    assert by_id["n0"].utilisation_before == pytest.approx(0.7)
    assert by_id["n0"].utilisation_after == pytest.approx(0.92)
    assert by_id["n0"].score == pytest.approx(0.92)
    assert all(n.alive for n in explanation.nodes)


def two_dim_table() -> NodeTable:
    table = NodeTable()
    table.upsert("a", (10, 20, 0), allocated=(2, 14, 0))  # cpu 0.2, memory 0.7
    table.upsert("b", (10, 20, 0), allocated=(6, 6, 0))  # cpu 0.6, memory 0.3
    table.upsert("c", (8, 8, 4), allocated=(4, 2, 1))  # cpu 0.5, memory 0.25, gpu 0.25
    return table


def test_balanced_by_hand() -> None:
    demand = (2, 2, 0)
    # after: a (0.4, 0.8), b (0.8, 0.4), c (0.75, 0.5, 0.25)
    std_a = np.std([0.4, 0.8])
    std_c = np.std([0.75, 0.5, 0.25])
    expected = [1 - std_a, 1 - std_a, 1 - std_c]
    np.testing.assert_allclose(Placer(two_dim_table(), "balanced").score(demand), expected)
    # a and b tie (1 - 0.2); c is 1 - 0.204: the lower index of the tie wins
    assert Placer(two_dim_table(), "balanced").place(demand).node_id == "a"


def test_tetris_by_hand() -> None:
    demand = (2, 2, 0)
    # Σ (r/c)(free/c) / k over dimensions with capacity
    a = (2 / 10 * 8 / 10 + 2 / 20 * 6 / 20) / 2
    b = (2 / 10 * 4 / 10 + 2 / 20 * 14 / 20) / 2
    c = (2 / 8 * 4 / 8 + 2 / 8 * 6 / 8 + 0) / 3
    np.testing.assert_allclose(Placer(two_dim_table(), "tetris").score(demand), [a, b, c])
    assert Placer(two_dim_table(), "tetris").place(demand).node_id == "c"  # 0.104 > 0.095


def test_binpack_and_spread_by_hand_with_gpu_node() -> None:
    demand = (2, 2, 0)
    after = [(0.4 + 0.8) / 2, (0.8 + 0.4) / 2, (0.75 + 0.5 + 0.25) / 3]
    np.testing.assert_allclose(Placer(two_dim_table(), "binpack").score(demand), after)
    np.testing.assert_allclose(
        Placer(two_dim_table(), "spread").score(demand), [1 - x for x in after]
    )
    # a and b tie at 0.6 after, and at 0.45 before: the lower index wins
    assert Placer(two_dim_table(), "binpack").place(demand).node_id == "a"
    assert Placer(two_dim_table(), "spread").place(demand).node_id == "c"


def test_waiting_and_never() -> None:
    table = NodeTable()
    table.upsert("small", (4, 4, 0))
    table.upsert("big", (16, 16, 0), allocated=(12, 0, 0))
    placer = Placer(table, "binpack")
    assert placer.place((8, 8, 0)).status == "waiting"  # big could, once it frees cpu
    assert placer.place((17, 1, 0)).status == "never"  # larger than every node's cpu
    assert placer.place((1, 1, 1)).status == "never"  # no node has a gpu
    table.set_alive("big", False)
    table.set_allocated("big", (0, 0, 0))
    assert placer.place((8, 8, 0)).status == "waiting"  # dead nodes count for "never" only
    table.set_alive("big", True)
    assert placer.place((8, 8, 0)).node_id == "big"


def test_dead_nodes_are_skipped_and_revived() -> None:
    table = worked_table()
    placer = Placer(table, "binpack")
    table.set_alive("n0", False)
    assert placer.place((110, 110, 0)).node_id == "n2"
    table.set_alive("n0", True)
    assert placer.place((110, 110, 0)).node_id == "n0"


def test_batch_codes_and_ids() -> None:
    table = NodeTable()
    table.upsert("only", (10, 10, 0))
    batch = Placer(table, "spread").place_batch(np.array([[6, 6, 0], [6, 6, 0], [11, 1, 0]]))
    assert batch.indices.tolist() == [0, WAITING, NEVER]
    assert batch.node_ids == ("only", None, None)
    assert [batch.status(k) for k in range(3)] == ["placed", "waiting", "never"]
    assert batch.placed.tolist() == [True, False, False]


def test_placer_follows_table_changes() -> None:
    table = NodeTable()
    for name in ("x", "y"):
        table.upsert(name, (10, 10, 0))
    placer = Placer(table, "binpack")
    assert placer.place((5, 5, 0)).node_id == "x"
    table.release(table.index_of("x"), (5, 5, 0))
    table.allocate(table.index_of("y"), (3, 3, 0))
    assert placer.place((5, 5, 0)).node_id == "y"
    table.upsert("z", (10, 10, 0), allocated=(9, 9, 0))
    assert placer.place((1, 1, 0)).node_id == "z"
    table.upsert("z", (20, 20, 0))  # capacity changes keep the allocation
    assert table.allocated[table.index_of("z")].tolist() == [10, 10, 0]


def test_table_basics() -> None:
    table = NodeTable(initial_capacity=1)
    for i in range(40):  # grows past its first arrays
        assert table.upsert(f"n{i}", (4, 0, 0), allocated=(i % 5, 0, 0)) == i
    assert len(table) == 40
    assert table.index_of("n7") == 7
    assert table.utilisation()[7].tolist() == [0.5, 0, 0]  # 0 where the capacity is 0
    assert table.free()[4].tolist() == [0, 0, 0]
    table.release(4, (10, 0, 0))
    assert table.allocated[4, 0] == 0  # never below zero
    with pytest.raises(ValueError, match="non-negative"):
        table.allocate(1, (-1, 0, 0))
    with pytest.raises(IndexError):
        table.allocate(40, (1, 0, 0))
    with pytest.raises(KeyError):
        table.index_of("nope")


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        Placer(NodeTable(), "random")  # type: ignore[arg-type]


def test_reservations_spread_a_burst_between_snapshots() -> None:
    clock = Clock(100.0)
    table = NodeTable()
    table.upsert("a", (10, 10, 0))
    table.upsert("b", (10, 10, 0))
    book = ReservationBook(ttl_s=5, clock=clock)
    placer = Placer(table, "spread")
    for task in ("t1", "t2"):
        placement = placer.place((4, 4, 0))
        assert placement.node_id is not None
        book.reserve(task, placement.node_id, (4, 4, 0))
    assert {r.node_id for r in (book.confirm("t1"), book.confirm("t2")) if r} == {"a", "b"}

    book.reserve("t3", "a", (4, 4, 0))
    # A snapshot that does not show t3 yet: the reservation is laid on top.
    book.rebase(table, {"a": (1, 1, 0), "b": (0, 0, 0)})
    assert table.allocated[0].tolist() == [5, 5, 0]
    clock.now += 6
    assert [r.task_id for r in book.expire()] == ["t3"]
    book.rebase(table, {"a": (1, 1, 0), "b": (0, 0, 0)})
    assert table.allocated[0].tolist() == [1, 1, 0]
    book.reserve("t4", "b", (2, 2, 0))
    assert "t4" in book
    assert book.cancel("t4", table) is not None
    assert table.allocated[1].tolist() == [0, 0, 0]
    assert len(book) == 0


@pytest.mark.parametrize(
    ("typical", "demand", "node"),
    [
        ((110, 110, 0), 110, "n0"),
        ((70, 70, 0), 70, "n1"),
        ((90, 90, 0), 70, "n1"),
        ((110, 110, 0), 70, "n1"),
    ],
)
def test_remnant_keeps_the_worked_example_once_warmed_up(
    typical: tuple[float, float, float], demand: float, node: str
) -> None:
    # The worked example still holds when the typical demand is learnt. By
    # hand for demand 70, typical 70: the 0.8 node is left with 30 free, no
    # typical task fits, all 30 stranded: 0.94 - 2 * 30/500 = 0.82; the 0.7
    # node keeps room for one typical task and strands 10: 0.84 - 2 * 10/500
    # = 0.80; the 0.6 node strands 60: 0.74 - 0.24 = 0.50; 0.5: 0.64 - 0.16.
    table = worked_table()
    placer = Placer(table, "remnant")
    placer.typical.value = np.asarray(typical, np.float64)
    if demand == 70 and typical[0] == 70:
        np.testing.assert_allclose(placer.score((70, 70, 0)), [0.80, 0.82, 0.50, 0.48, 0.46])
    assert placer.place((demand, demand, 0)).node_id == node


def test_remnant_avoids_stranding_one_dimension() -> None:
    # Two nodes (10 cpu, 10 mem); n0 holds (8, 1), n1 (4, 5); a (2, 1) task.
    # binpack: both end at mean utilisation (10+2)/20 = (6+6)/20 = 0.6, tie →
    # n0, whose cpu it fills, stranding 8 memory. remnant, typical (1, 1):
    # n0 keeps (0, 8) free → no typical task fits → 8/20 stranded →
    # 0.6 - 2·0.4 = -0.2; n1 keeps (4, 4) → four fit, nothing left → 0.6.
    table = NodeTable()
    table.upsert("n0", (10, 10, 0), allocated=(8, 1, 0))
    table.upsert("n1", (10, 10, 0), allocated=(4, 5, 0))
    assert Placer(table, "binpack").choose((2, 1, 0)) == 0
    placer = Placer(table, "remnant")
    placer.typical.value = np.array([1.0, 1.0, 0.0])
    np.testing.assert_allclose(placer.score((2, 1, 0)), [-0.2, 0.6])
    assert placer.choose((2, 1, 0)) == 1


def test_typical_demand_is_the_median_of_recent_placements() -> None:
    from boson_shared.scheduling.typical_demand import TypicalDemand

    typical = TypicalDemand(window=8, refresh_every=4)
    typical.observe(np.array([1.0, 2.0, 0.0]), 3)
    typical.refresh()
    assert typical.value.tolist() == [0.0, 0.0, 0.0]  # fewer than 4 new: unchanged
    typical.observe(np.array([3.0, 1.0, 0.0]), 2)
    typical.refresh()
    assert typical.value.tolist() == [1.0, 2.0, 0.0]  # median of 3×(1,2), 2×(3,1)
    typical.observe(np.array([5.0, 5.0, 0.0]), 10)  # the window keeps the last 8
    typical.refresh()
    assert typical.value.tolist() == [5.0, 5.0, 0.0]
