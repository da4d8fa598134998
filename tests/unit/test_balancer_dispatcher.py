"""The balancer's dispatcher: credit, FIFO, re-picks, stealing, lookahead, sweep — no broker."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from boson_services.balancer.dispatch_pump import FLEXIBLE_LOOKAHEAD
from boson_services.balancer.dispatcher import RECENT_DISPATCH_S, Dispatcher
from tests.support.balancer import CREDIT_PER_SLOT, N, demand, dispatcher, snapshot
from tests.support.fakes import Clock


def outcomes(futures: dict[str, asyncio.Future[str]]) -> dict[str, str | None]:
    return {t: (f.result() if f.done() else None) for t, f in futures.items()}


def assert_within_credit(d: Dispatcher) -> None:
    """No node has more work out than its window, and ``credit`` is exactly what is left.

    ``credit()`` clamps at zero, so it is checked against the unclamped
    window − in flight, which is what would go negative on an over-dispatch.
    """
    for node_id, node in d.nodes.items():
        left = node.window - len(node.in_flight)
        assert left >= 0, (node_id, node.window, sorted(node.in_flight))
        assert d.credit(node_id) == (left if node.takes_work else 0), node_id
        assert len(node.in_flight) <= node.slots * CREDIT_PER_SLOT


async def test_a_node_gets_no_more_than_its_credit_and_regains_it_per_result() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=2)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "a") for i in range(10)}
    assert_within_credit(d)
    assert [t for t, node in outcomes(futures).items() if node] == ["t0", "t1", "t2", "t3"]
    assert d.credit("a") == 0
    d.complete("t0")
    assert futures["t4"].done()
    assert not futures["t5"].done()
    d.complete("t0")  # a repeated result gives nothing back twice
    assert not futures["t5"].done()
    assert d.credit("a") == 0
    assert_within_credit(d)
    for i in range(1, 10):
        d.complete(f"t{i}")
        assert_within_credit(d)
    assert all(f.done() for f in futures.values())
    assert d.dispatched_total == 10


async def test_a_node_on_probation_gets_no_new_work_until_it_ends() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=2, on_probation=True), N("b", slots=1)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "a") for i in range(4)}
    # Held for a, which takes nothing new: b takes what its credit allows.
    assert outcomes(futures) == {"t0": "b", "t1": "b", "t2": None, "t3": None}
    assert d.credit("a") == 0
    d.on_snapshot(snapshot([N("a", slots=2), N("b", slots=1)], seq=2))
    assert outcomes(futures) == {"t0": "b", "t1": "b", "t2": "a", "t3": "a"}


async def test_each_node_is_served_fifo() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "a") for i in range(6)}
    order: list[str] = []
    for _ in range(6):
        done = [t for t, f in futures.items() if f.done() and t not in order]
        order.extend(done)
        for t in done:
            d.complete(t)
    assert order == [f"t{i}" for i in range(6)]


async def test_work_for_a_hot_node_is_repicked_onto_a_cool_one() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("hot", measured=0.95), N("cool", measured=0.1)]))
    future = d.hold("t1", demand(), "hot")
    assert future.result() == "cool"
    assert d.credit("hot") == 2 * CREDIT_PER_SLOT


async def test_when_every_node_is_hot_placement_still_proceeds() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", measured=0.95), N("b", measured=0.97)]))
    assert d.hold("t1", demand(), "a").result() == "a"


async def test_work_for_a_dead_or_unknown_node_goes_to_a_live_one() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("dead", alive=False), N("live")]))
    assert d.hold("t1", demand(), "dead").result() == "live"
    assert d.hold("t2", demand(), "never-heard-of").result() == "live"
    assert d.hold("t3", demand(), None).result() == "live"  # pending work


async def test_held_work_moves_when_its_node_goes_down() -> None:
    d = dispatcher()
    # b has no room yet, so a's held work cannot go there before a dies.
    d.on_snapshot(snapshot([N("a", slots=1), N("b", slots=1, allocated=1000.0)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "a") for i in range(4)}
    assert outcomes(futures) == {"t0": "a", "t1": "a", "t2": None, "t3": None}
    went_down = d.on_snapshot(snapshot([N("a", slots=1, alive=False), N("b", slots=1)], seq=2))
    assert went_down == ["a"]
    assert outcomes(futures) == {"t0": "a", "t1": "a", "t2": "b", "t3": "b"}
    assert d.credit("a") == 0
    # What "a" had in flight is forgotten (its queue is drained back to us).
    assert "t0" not in d.where
    assert "t1" not in d.where
    assert d.on_snapshot(snapshot([N("a", slots=1, alive=False), N("b", slots=1)], seq=3)) == []


async def test_a_pending_task_waits_until_some_node_has_room() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", capacity=100, allocated=95)]))
    future = d.hold("big", demand(10), None)
    assert not future.done()
    assert d.pending() == 1
    d.on_snapshot(snapshot([N("a", capacity=100, allocated=50)], seq=2))
    assert future.result() == "a"
    assert d.pending() == 0


async def test_the_flexible_queue_looks_past_a_stuck_head() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=50, capacity=100)]))
    huge = d.hold("huge", demand(500), None)  # fits nowhere now
    small = {f"s{i}": d.hold(f"s{i}", demand(), None) for i in range(5)}
    assert not huge.done()
    assert all(node == "a" for node in outcomes(small).values())
    assert list(h.task_id for h in d.flexible) == ["huge"]  # kept at the head, in order


async def test_the_lookahead_is_bounded() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=50, capacity=100)]))
    stuck = [d.hold(f"huge{i}", demand(500), None) for i in range(FLEXIBLE_LOOKAHEAD)]
    behind = d.hold("small", demand(), None)
    assert not any(f.done() for f in stuck)
    assert not behind.done()  # past the window: waits its turn
    assert [h.task_id for h in d.flexible][-1] == "small"


async def test_spare_credit_takes_work_waiting_for_a_node_without_credit() -> None:
    # Binpack puts everything on "busy"; "idle" has credit and room: the work
    # that "busy" cannot take now goes to "idle" at once, not after the sweep.
    d = dispatcher()
    d.on_snapshot(snapshot([N("busy", slots=1), N("idle", slots=1)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "busy") for i in range(5)}
    assert outcomes(futures) == {"t0": "busy", "t1": "busy", "t2": "idle", "t3": "idle", "t4": None}
    assert d.stolen_total == 2
    assert_within_credit(d)
    d.complete("t2")  # idle's credit comes back first: it takes busy's oldest
    assert futures["t4"].result() == "idle"


async def test_a_queue_a_steal_empties_leaves_the_queued_set_at_once() -> None:
    # The next result's pump then has no steal to try (and no walk over the
    # nodes with spare credit to make for it).
    d = dispatcher()
    d.on_snapshot(snapshot([N("busy", slots=1), N("idle", slots=1)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "busy") for i in range(3)}
    assert outcomes(futures) == {"t0": "busy", "t1": "busy", "t2": "idle"}
    assert not d.by_node["busy"]
    assert "busy" not in d._queued
    d.complete("t0")
    assert d.stolen_total == 1


async def test_a_placed_node_with_credit_keeps_its_own_work() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1), N("b", slots=1)]))
    futures = {t: d.hold(t, demand(), node) for t, node in [("a0", "a"), ("b0", "b"), ("a1", "a")]}
    assert outcomes(futures) == {"a0": "a", "b0": "b", "a1": "a"}
    assert d.stolen_total == 0


async def test_spare_credit_takes_only_work_that_fits_and_the_oldest_first() -> None:
    clock = Clock()
    d = dispatcher(clock)
    d.on_snapshot(snapshot([N("a", slots=1), N("b", slots=1), N("small", slots=1, capacity=50.0)]))
    for t in ("a0", "a1"):
        d.hold(t, demand(), "a")
    for t in ("b0", "b1"):
        d.hold(t, demand(), "b")
    # small is busy with work of its own, a and b are full: the rest waits.
    small_work = {t: d.hold(t, demand(), "small") for t in ("s0", "s1")}
    assert all(f.result() == "small" for f in small_work.values())
    clock.now = 1.0
    big = d.hold("big", demand(100.0), "a")  # does not fit on small
    clock.now = 2.0
    b_late = d.hold("b2", demand(), "b")
    clock.now = 3.0
    a_late = d.hold("a2", demand(), "a")
    assert not any(f.done() for f in (big, b_late, a_late))
    d.complete("s0")  # small has one credit: b2 waited longest among what fits
    assert b_late.result() == "small"
    assert not any(f.done() for f in (big, a_late))
    assert d.stolen_total == 1


async def test_sweep_moves_long_waiting_work_into_the_flexible_queue() -> None:
    clock = Clock()
    d = dispatcher(clock)
    d.on_snapshot(snapshot([N("busy", slots=1), N("other", slots=1)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "busy") for i in range(5)}
    assert outcomes(futures)["t4"] is None  # no node has credit left
    clock.now = 1.0
    assert d.sweep() == 0
    clock.now = 2.5
    assert d.sweep() == 1
    assert [h.task_id for h in d.flexible] == ["t4"]
    assert d.retargeted_total == 1
    d.complete("t0")  # any node's credit takes it now
    assert futures["t4"].result() == "busy"


async def test_rebalance_sends_held_work_of_hot_nodes_elsewhere() -> None:
    d = Dispatcher(
        credit_per_slot=1,
        hot_threshold=0.99,
        retarget_after_s=60.0,
        imbalance_threshold=0.25,
        rng=np.random.default_rng(1),
    )
    d.on_snapshot(snapshot([N("a", slots=1, measured=0.1), N("b", slots=1, measured=0.1)]))
    d.hold("b0", demand(), "b")  # b is busy too: a's work waits for a
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "a") for i in range(3)}
    assert outcomes(futures) == {"t0": "a", "t1": None, "t2": None}
    d.on_snapshot(snapshot([N("a", slots=1, measured=0.9), N("b", slots=1, measured=0.1)], seq=2))
    assert d.retargeted_total == 2
    assert [h.task_id for h in d.flexible] == ["t1", "t2"]
    d.complete("b0")
    assert futures["t1"].result() == "b"
    assert not futures["t2"].done()  # b has no more credit; t2 waits for anyone


async def test_a_released_task_is_never_dispatched() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1)]))
    futures = [d.hold(f"t{i}", demand(), "a") for i in range(4)]  # credit 2
    d.release("t2")
    assert futures[2].cancelled()
    d.complete("t0")
    assert futures[3].result() == "a"
    assert "t2" not in d.where
    assert d.credit("a") == 0


async def test_a_redelivered_task_returns_its_old_credit_first() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1)]))
    d.hold("t0", demand(), "a")
    d.hold("t1", demand(), "a")
    assert d.credit("a") == 0
    again = d.hold("t0", demand(), "a")  # the placement came back (balancer restart)
    assert again.result() == "a"
    assert d.credit("a") == 0
    assert sorted(d.nodes["a"].in_flight) == ["t0", "t1"]


def assert_work_conserving(d: Dispatcher) -> None:
    """After any hold or result: no node that takes work has credit left
    while work waits — for it, in the flexible queue, or for a full node."""
    waiting = any(not h.future.done() for q in d.by_node.values() for h in q)
    waiting = waiting or any(not h.future.done() for h in d.flexible)
    if not waiting:
        return
    for node_id, node in d.nodes.items():
        assert not (d.accepts(node) and d.credit(node_id) > 0), (node_id, d.credit(node_id))


@pytest.mark.parametrize(("rounds", "seed"), [(300, 7), (300, 8), (300, 9)])
async def test_random_holds_and_results_keep_credit_within_bounds(rounds: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = dispatcher()
    nodes = [N(f"n{i}", slots=int(rng.integers(1, 4))) for i in range(6)]
    d.on_snapshot(snapshot(nodes))
    futures: dict[str, asyncio.Future[str]] = {}
    for step in range(rounds):
        if rng.random() < 0.6:
            # Mostly onto the first two nodes, as binpack would.
            target = nodes[int(rng.integers(0, 2))].node_id if rng.random() < 0.8 else None
            futures[f"t{step}"] = d.hold(f"t{step}", demand(), target)
        elif d.where:
            d.complete(str(rng.choice(sorted(d.where))))
        assert_within_credit(d)
        assert_work_conserving(d)
    while d.where:
        d.complete(next(iter(d.where)))
        assert_within_credit(d)
        assert_work_conserving(d)
    assert all(f.done() for f in futures.values())


async def test_flexible_work_goes_smallest_pending_job_first() -> None:
    # Credit for two tasks; held in this order: three of job A, one of job B.
    # FIFO would send a1, a2; smallest pending job first sends b1, then a1.
    d = dispatcher()
    futures = {
        t: d.hold(t, demand(), None, job=job)
        for t, job in (("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"))
    }
    d.on_snapshot(snapshot([N("n0", slots=1)]))
    assert outcomes(futures) == {"a1": "n0", "a2": None, "a3": None, "b1": "n0"}
    assert [h.task_id for h in d.flexible] == ["a2", "a3"]  # queue order kept


async def test_flexible_work_of_a_dead_node_and_old_work_go_first() -> None:
    clock = Clock()
    d = dispatcher(clock)
    futures = {"a1": d.hold("a1", demand(), None, job="A")}
    futures["a2"] = d.hold("a2", demand(), None, job="A")
    clock.now = d.age_limit_s  # a1 and a2 have waited the age limit now
    futures["b1"] = d.hold("b1", demand(), None, job="B")
    futures["o1"] = d.hold("o1", demand(), None, job="C", urgent=True)
    futures["c2"] = d.hold("c2", demand(), None, job="C")
    d.on_snapshot(snapshot([N("n0", slots=1)]))
    # The orphan first, then the oldest; b1 (the smallest job) waits.
    assert outcomes(futures) == {"a1": "n0", "a2": None, "b1": None, "o1": "n0", "c2": None}


async def test_a_result_frees_its_resources_for_pending_work_at_once() -> None:
    # Room for two tasks of 400 (credit for four): the third waits for room,
    # and gets it when a result comes back, not at the next snapshot.
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=2, capacity=1000.0)]))
    futures = {t: d.hold(t, demand(400.0), None) for t in ("t0", "t1", "t2")}
    assert outcomes(futures) == {"t0": "a", "t1": "a", "t2": None}
    d.complete("t0")
    assert outcomes(futures)["t2"] == "a"
    assert d.nodes["a"].allocated.tolist() == [800.0, 800.0, 0.0]
    d.complete("t1")
    d.complete("t2")
    assert d.nodes["a"].allocated.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("waited", "expected"), [(0.0, ("L1", "a")), (1.0, ("S", "a"))])
async def test_pending_work_that_fills_a_hole_cleanly_goes_first(
    waited: float, expected: tuple[str, str]
) -> None:
    # A typical held task asks for 20. Node a has 40 free. Smallest pending
    # job first would offer it to S (30, one task), which would leave 10: less
    # than a typical task, stranded. L1 (40, of a two-task job) fills it
    # exactly, so the clean-fit pass sends L1 and S waits for room. Work held
    # past the age limit takes any room in that pass: S, having waited it,
    # goes first.
    clock = Clock()
    d = dispatcher(clock)
    for i in range(8):  # the typical demand is learnt from every hold
        d.hold(f"t{i}", demand(20), None)
        d.release(f"t{i}")
    futures = {"S": d.hold("S", demand(30), None, job="S")}
    clock.now = waited * d.age_limit_s
    futures |= {t: d.hold(t, demand(40), None, job="L") for t in ("L1", "L2")}
    d.on_snapshot(snapshot([N("a", slots=4, capacity=100, allocated=60)]))
    assert d.typical.value[:2].tolist() == [20.0, 20.0]
    assert {t: n for t, n in outcomes(futures).items() if n} == dict([expected])


async def test_work_placed_on_a_node_beyond_its_resources_waits_despite_credit() -> None:
    """Three schedulers each placed two 2-cpu tasks on a 4-cpu node: only two go at once.

    Credit (slots × credit per slot = 8) would let all six through; the
    node's resources let two.
    """
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=4, capacity=4)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(2), "a") for i in range(6)}
    assert [t for t, node in outcomes(futures).items() if node] == ["t0", "t1"]
    assert d.credit("a") > 0
    # A snapshot taken before the dispatches reached the node shows it empty:
    # what was sent there still counts.
    d.on_snapshot(snapshot([N("a", slots=4, capacity=4, allocated=0)], seq=2))
    assert [t for t, node in outcomes(futures).items() if node] == ["t0", "t1"]
    d.complete("t0")
    assert [t for t, node in outcomes(futures).items() if node] == ["t0", "t1", "t2"]


async def test_work_that_does_not_fit_its_placed_node_goes_to_one_with_room() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=4, capacity=4), N("b", slots=4, capacity=4)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(2), "a") for i in range(4)}
    assert outcomes(futures) == {"t0": "a", "t1": "a", "t2": "b", "t3": "b"}


async def test_a_result_the_balancer_missed_does_not_hold_a_node_s_room_for_ever() -> None:
    """Past a few seconds the node's own report wins over what was dispatched."""
    clock = Clock()
    d = dispatcher(clock)
    d.on_snapshot(snapshot([N("a", slots=4, capacity=4)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(2), "a") for i in range(3)}
    assert [t for t, node in outcomes(futures).items() if node] == ["t0", "t1"]
    # t0 finished, but its result never reached this balancer.
    clock.now = RECENT_DISPATCH_S + 1
    d.on_snapshot(snapshot([N("a", slots=4, capacity=4, allocated=2)], seq=2))
    assert futures["t2"].result() == "a"


async def test_credit_of_a_missed_result_comes_back_once_the_node_is_seen_idle() -> None:
    """A result lost on the way (the balancer failing over) must not hold credit for ever."""
    clock = Clock()
    d = dispatcher(clock)
    bound = d.missed_result_after_s
    d.on_snapshot(snapshot([N("a", slots=1)]))
    futures = {f"t{i}": d.hold(f"t{i}", demand(), "a") for i in range(3)}
    assert outcomes(futures) == {"t0": "a", "t1": "a", "t2": None}
    d.complete("t0")  # t1's result is the one missed
    assert outcomes(futures)["t2"] == "a"
    d.complete("t2")
    assert d.credit("a") == CREDIT_PER_SLOT - 1
    clock.now = bound / 2
    d.on_snapshot(snapshot([N("a", slots=1, running=1)], seq=2))  # busy: the clock restarts
    clock.now = bound / 2 + bound - 1
    d.on_snapshot(snapshot([N("a", slots=1)], seq=3))
    d.on_snapshot(snapshot([N("a", slots=1)], seq=4))
    assert d.credit("a") == CREDIT_PER_SLOT - 1  # idle, but not for long enough yet
    clock.now = bound / 2 + 2 * bound
    d.on_snapshot(snapshot([N("a", slots=1)], seq=5))
    assert d.credit("a") == CREDIT_PER_SLOT
    assert d.missed_results_total == 1
    assert_within_credit(d)


async def test_a_task_dispatched_to_an_idle_node_keeps_its_credit_within_the_bound() -> None:
    clock = Clock()
    d = dispatcher(clock)
    d.on_snapshot(snapshot([N("a", slots=1)]))
    clock.now = 10 * d.missed_result_after_s  # the node has long been idle
    future = d.hold("late", demand(), "a")
    assert future.done()
    clock.now += d.missed_result_after_s - 1
    d.on_snapshot(snapshot([N("a", slots=1)], seq=2))
    assert d.credit("a") == CREDIT_PER_SLOT - 1
    clock.now += 2
    d.on_snapshot(snapshot([N("a", slots=1)], seq=3))
    assert d.credit("a") == CREDIT_PER_SLOT
