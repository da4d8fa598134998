"""The balancer's dispatcher: a whole-node task behind a stream of small ones is not starved."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from boson_services.balancer.dispatch_records import HeldTooLongError, TaskCancelledHere
from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.handlers import BalancerHandlers
from boson_shared.contract.messages import (
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
    TaskUsage,
)
from boson_shared.contract.topology import Names
from tests.support.balancer import N, demand, dispatcher, snapshot
from tests.support.fakes import Clock, Published

NAMES = Names("starve-test")

SMALL_EVERY_S = 1.5
SMALL_S = 10.0
BIG_AT = 50.0
TICK_S = 0.5


def scheduler_target(d: Dispatcher, units: float) -> str | None:
    """Where the scheduler would place it: a node its view shows room on, else pending."""
    for node_id, node in d.nodes.items():
        if bool(np.all(node.capacity - node.allocated >= units)):
            return node_id
    return None


async def test_a_whole_node_task_is_not_starved_by_a_stream_of_small_ones() -> None:
    clock = Clock()
    d = dispatcher(clock)
    d.on_snapshot(snapshot([N("a", slots=4, capacity=4.0), N("b", slots=4, capacity=4.0)]))
    futures: dict[str, asyncio.Future[str]] = {}
    ends: dict[str, float] = {}
    started: dict[str, float] = {}
    next_small = 0.0
    k = 0
    promised = float("inf")
    while clock.now <= 300.0:
        for task_id, end in list(ends.items()):
            if end <= clock.now:
                del ends[task_id]
                d.complete(task_id, SMALL_S)
        if clock.now >= next_small:
            task_id = f"s{k}"
            k += 1
            futures[task_id] = d.hold(
                task_id, demand(1.0), scheduler_target(d, 1.0), handler="small", timeout_s=60.0
            )
            next_small += SMALL_EVERY_S
        if clock.now == BIG_AT:
            futures["big"] = d.hold("big", demand(4.0), None, handler="big", timeout_s=60.0)
            assert d.reservation is not None
            assert d.reservation.key == "big"
            promised = d.reservation.promised_start
        for task_id, future in futures.items():
            if future.done() and task_id not in started:
                started[task_id] = clock.now
                ends[task_id] = clock.now + SMALL_S
        clock.now += TICK_S
    # Every small task running when the big one arrives has ended SMALL_S
    # later: a node kept free of new work by then has room for it.
    bound = BIG_AT + SMALL_S
    assert "big" in started, "the whole-node task was never dispatched"
    # Run times reported by then make the promise exact (to the tick).
    assert promised <= bound
    assert started["big"] <= promised + TICK_S


async def test_through_the_handlers_a_placed_whole_node_task_holds_the_node() -> None:
    # Placements as the scheduler publishes them: four 1-unit tasks fill node
    # a (4 units); a 4-unit task placed pending gets the reservation, expected
    # when the four end — by their timeout_s, as their handler reported no
    # run time yet. A fifth small task placed on a would run past that, so a
    # does not take it; the results come back and the whole-node task goes first.
    clock = Clock()
    d = dispatcher(clock)
    publish = Published()
    balancer = BalancerHandlers(d, NAMES, publish, park_after_s=600.0)
    d.on_snapshot(snapshot([N("a", slots=8, capacity=4.0)]))

    def placed(task_id: str, units: float, node: str | None, handler: str) -> TaskPlaced:
        task = TaskSubmitted(task_id=task_id, handler=handler, reply_to="c", timeout_s=30.0)
        return TaskPlaced(task=task, demand=demand(units), node_id=node, strategy="binpack")

    for i in range(4):
        await balancer.on_placed(placed(f"s{i}", 1.0, "a", "small"))
    big = asyncio.create_task(balancer.on_placed(placed("big", 4.0, None, "big")))
    await asyncio.sleep(0)
    assert d.reservation is not None
    assert d.reservation.key == "big"
    assert d.reservation.promised_start == 30.0
    clock.now = 1.0
    late = asyncio.create_task(balancer.on_placed(placed("s4", 1.0, "a", "small")))
    await asyncio.sleep(0)
    assert not late.done()
    clock.now = 20.0
    done = [
        TaskResult(
            task_id=f"s{i}",
            handler="small",
            status="succeeded",
            node_id="a",
            reply_to="c",
            submitted_at=0.0,
            usage=TaskUsage(wall_s=20.0, cpu_s=0.0, peak_memory_bytes=0),
        )
        for i in range(4)
    ]
    await balancer.on_events(done)
    await asyncio.wait_for(big, 1.0)
    assigned = [m for m in publish.messages if isinstance(m, TaskAssigned)]
    assert [m.task.task_id for m in assigned][-1] == "big"
    assert not late.done()  # a is whole-node busy now
    late.cancel()


@pytest.mark.parametrize("leaves", ["cancelled", "parked"])
async def test_a_head_that_leaves_takes_its_reservation_with_it(leaves: str) -> None:
    # Node a (5 units) runs four 1-unit tasks; a whole-node task waits with
    # the reservation (a frees when they end, by their timeout: 30 s), so a
    # small task that would still run then is not started on a. Once the
    # whole-node task is cancelled or parked, nothing waits for that promise:
    # the next small task starts at once.
    clock = Clock()
    d = dispatcher(clock)
    d.on_snapshot(snapshot([N("a", slots=8, capacity=5.0)]))
    for i in range(4):
        assert d.hold(f"s{i}", demand(1.0), "a", handler="small", timeout_s=30.0).done()
    big = d.hold("big", demand(5.0), None, handler="big", timeout_s=30.0)
    assert d.reservation is not None
    assert d.reservation.key == "big"
    clock.now = 1.0
    if leaves == "cancelled":
        assert d.cancel("big")
        assert isinstance(big.exception(), TaskCancelledHere)
    else:
        assert d.overdue(1.0) == 1
        assert isinstance(big.exception(), HeldTooLongError)
    assert d.head.reservation is None
    late = d.hold("s4", demand(1.0), "a", handler="small", timeout_s=30.0)
    assert late.done()
    assert late.result() == "a"
