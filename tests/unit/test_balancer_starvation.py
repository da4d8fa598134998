"""The balancer's dispatcher: a whole-node task behind a stream of small ones is not starved."""

from __future__ import annotations

import asyncio

import numpy as np

from boson_services.balancer.dispatcher import Dispatcher
from tests.support.balancer import N, demand, dispatcher, snapshot
from tests.support.fakes import Clock

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
