"""The admission gate's data path: one future a task from its line to its node.

A task's handler waits on the future :meth:`AdmissionGate.enter` returns;
the gate hands that same future to the dispatcher's hold when it admits the
task, and the dispatcher resolves it with the node. Cancels, the park sweep
and draining fail or cancel it. The order in which tasks reach the
dispatcher through the gate is admission's own order.
"""

from __future__ import annotations

import asyncio
import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boson_services.balancer.dispatch_records import (
    HeldTask,
    HeldTooLongError,
    NodeView,
    TaskCancelledHere,
)
from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.messages import ResourceVector, TaskSubmitted
from boson_shared.scheduling.admission import Admission, Running
from boson_shared.scheduling.tenants import parse_tenants
from tests.support.balancer import N, dispatcher, snapshot
from tests.support.fakes import Clock

ONE = ResourceVector(cpu=1, memory=1)
TENANTS = """
[tenants.a]
quota = { cpu = 2 }
weight = 2
may_preempt = true
[tenants.b]
quota = { cpu = 1 }
[tenants.c]
"""


def task(task_id: str, tenant: str, priority: int = 0) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=task_id, handler="noop", reply_to="r", tenant=tenant, priority=priority
    )


class Line:
    """A gate over one node of ``slots`` slots (credit: two a slot), and the
    tasks in the order the gate handed them to the dispatcher."""

    def __init__(self, slots: int = 1, clock: Clock | None = None) -> None:
        self.clock = clock or Clock(100.0)
        self.dispatcher: Dispatcher = dispatcher(self.clock)
        self.dispatcher.on_snapshot(snapshot([N("n", slots=slots)]))
        self.gate = AdmissionGate(
            parse_tenants(TENANTS), self.dispatcher, grace_s=30.0, clock=self.clock
        )
        self.gate.set_pool()
        self.started: list[str] = []

    def enter(self, t: TaskSubmitted, demand: ResourceVector = ONE) -> asyncio.Future[str]:
        def start(future: asyncio.Future[str]) -> asyncio.Future[str]:
            self.started.append(t.task_id)
            return self.dispatcher.hold(t.task_id, demand, "n", future=future)

        return self.gate.enter(t, demand, start, front=False)

    def finish(self, task_id: str) -> None:
        self.dispatcher.complete(task_id)
        self.gate.finished(task_id)
        self.gate.admit()

    def full(self) -> None:
        """t0 and t1 admitted: the node (one slot, credit for two) takes no more."""
        for k in range(2):
            self.enter(task(f"t{k}", "c"))
        self.gate.admit()


async def test_the_future_a_task_waits_on_in_its_line_is_the_one_its_node_resolves() -> None:
    line = Line(slots=1)  # credit for two tasks
    futures = [line.enter(task(f"t{k}", "c")) for k in range(3)]
    assert not any(f.done() for f in futures)
    assert all(line.gate.tickets[f"t{k}"].waiting for k in range(3))
    line.gate.admit()
    assert [f.result() for f in futures[:2]] == ["n", "n"]
    assert not futures[2].done()
    assert [line.gate.tickets[f"t{k}"].waiting for k in range(3)] == [False, False, True]
    # The dispatcher holds nothing of its own: it resolved the gate's futures.
    assert not line.dispatcher.held
    line.finish("t0")
    assert futures[2].result() == "n"
    assert line.started == ["t0", "t1", "t2"]


async def test_a_cancel_fails_the_waiting_future_and_empties_its_place_in_line() -> None:
    line = Line(slots=1)
    line.full()
    waiting = line.enter(task("t2", "c"))
    assert line.gate.cancel("t2")
    with pytest.raises(TaskCancelledHere):
        waiting.result()
    assert line.gate.admission.waiting("c") == 0
    assert not line.gate.cancel("t0")  # admitted: its executor's to stop


async def test_the_park_sweep_fails_a_future_waiting_too_long() -> None:
    clock = Clock(100.0)
    line = Line(slots=1, clock=clock)
    line.full()
    waiting = line.enter(task("t2", "c"))
    clock.now += 61.0
    assert line.gate.overdue(60.0) == 1
    with pytest.raises(HeldTooLongError):
        waiting.result()
    assert "t2" not in line.gate.tickets
    assert line.gate.admission.waiting("c") == 0


async def test_a_handler_that_leaves_while_waiting_takes_its_task_out_of_line() -> None:
    line = Line(slots=1)
    line.full()
    waiting = line.enter(task("t2", "c"))
    line.gate.left("t2")
    assert waiting.cancelled()
    assert line.gate.admission.waiting("c") == 0
    line.finish("t0")
    assert line.started == ["t0", "t1"]


async def test_tickets_of_one_demand_share_one_read_only_array() -> None:
    line = Line(slots=1)
    for k in range(3):
        line.enter(task(f"t{k}", "c"))
    line.enter(task("big", "c"), ResourceVector(cpu=2, memory=2))
    arrays = [line.gate.tickets[f"t{k}"].demand for k in range(3)]
    assert arrays[0] is arrays[1] is arrays[2]
    assert not arrays[0].flags.writeable
    assert line.gate.tickets["big"].demand.tolist() == [2.0, 2.0, 0.0]


async def test_holds_of_one_demand_share_one_read_only_gridded_array() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1)]))
    for k in range(3):
        d.hold(f"t{k}", ResourceVector(cpu=1 + 1e-9, memory=1), "a")
    d.hold("big", ResourceVector(cpu=2, memory=2), "a")
    held = [d.held.get(f"t{k}") for k in range(3)]
    arrays = [h.demand if h else d._demand_of[f"t{k}"] for k, h in enumerate(held)]
    assert arrays[0] is arrays[1] is arrays[2]
    assert not arrays[0].flags.writeable
    assert arrays[0].tolist() == [1.0, 1.0, 0.0]  # on the grid, as every hold's
    assert d.held["big"].demand.tolist() == [2.0, 2.0, 0.0]


tasks_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=2)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(tasks=tasks_strategy, slots=st.integers(min_value=1, max_value=4), results=st.data())
def test_the_gate_hands_tasks_to_the_dispatcher_in_admissions_order(
    tasks: list[tuple[str, int]], slots: int, results: st.DataObject
) -> None:
    """On random lines, credit and results: the tasks reach the dispatcher
    in the order admission alone admits them when the placer takes as many
    as the node has credit for."""
    finished = results.draw(
        st.lists(st.integers(min_value=0, max_value=len(tasks) - 1), max_size=len(tasks))
    )

    async def through_the_gate() -> list[str]:
        line = Line(slots=slots)
        for k, (tenant, priority) in enumerate(tasks):
            line.enter(task(f"t{k}", tenant, priority))
        line.gate.admit()
        for k in finished:
            if f"t{k}" in line.dispatcher.where:
                line.finish(f"t{k}")
        return line.started

    gated = asyncio.run(through_the_gate())

    # Admission alone, with a placer that takes what the node has credit for.
    admission = Admission(parse_tenants(TENANTS), grace_s=30.0)
    admission.set_pool((1000.0, 1000.0, 0.0))
    credit = 2 * slots
    runs = {}
    order: list[str] = []

    def place(offer: Running) -> int:
        nonlocal credit
        if credit == 0:
            return 0
        credit -= 1
        order.append(str(offer.key))
        runs[str(offer.key)] = offer
        return 1

    for k, (tenant, priority) in enumerate(tasks):
        admission.submit(f"t{k}", tenant, (1.0, 1.0, 0.0), 100.0, priority=priority, order=k)
    admission.admit(100.0, place)
    for k in finished:
        if f"t{k}" in runs:
            credit += 1
            admission.release(runs.pop(f"t{k}"))
            admission.admit(100.0, place)
    assert gated == order


async def test_a_handler_cancelled_while_waiting_in_line_leaves_no_task_there() -> None:
    """Draining cancels the handler's task: its future is cancelled first,
    then the handler leaves; its place in its tenant's line must go too
    (a place left behind is offered to no one and counted as waiting)."""
    line = Line(slots=1)
    line.full()

    async def handler() -> str:
        future = line.enter(task("t2", "c"))
        try:
            return await future
        except asyncio.CancelledError:
            line.gate.left("t2")  # what the balancer's handler does (its _leave)
            raise

    waiting = asyncio.ensure_future(handler())
    await asyncio.sleep(0)
    assert line.gate.admission.waiting("c") == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert "t2" not in line.gate.tickets
    assert line.gate.admission.waiting("c") == 0
    line.finish("t0")
    assert line.started == ["t0", "t1"]


async def test_admitted_work_its_node_cannot_start_goes_at_once_to_one_that_can() -> None:
    # "busy" is full and still holds an older task too big for "idle"; work
    # the gate admits for "busy" (because "idle" can start it) must not wait
    # behind that task in busy's queue, where a steal never reaches it.
    d = dispatcher()
    d.on_snapshot(snapshot([N("busy", slots=1), N("idle", slots=1, capacity=10.0)]))
    for k in range(2):
        assert d.hold(f"b{k}", ResourceVector(cpu=1, memory=1), "busy").result() == "busy"
    big = d.hold("big", ResourceVector(cpu=100, memory=100), "busy")
    admitted = d.hold("t", ONE, "busy", future=asyncio.get_running_loop().create_future())
    assert not big.done()
    assert admitted.result() == "idle"
    assert [h.task_id for h in d.by_node["busy"]] == ["big"]


async def test_admitted_work_started_at_once_is_not_kept_for_the_sweep() -> None:
    # Work the hold dispatched at once is never listed for the sweep, so
    # nothing keeps it alive after its result.
    d = dispatcher()
    d.on_snapshot(snapshot([N("busy", slots=1), N("idle", slots=1)]))
    for k in range(2):
        assert d.hold(f"b{k}", ONE, "busy").result() == "busy"
    admitted = d.hold("t", ONE, "busy", future=asyncio.get_running_loop().create_future())
    assert admitted.result() == "idle"
    d.complete("t")
    del admitted
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, HeldTask) and o.task_id == "t"]


async def test_held_work_a_node_took_later_is_not_kept_alive_behind_a_long_hold() -> None:
    # The sweep's list of holds lets a hold go once a node takes it: ended
    # holds behind one still waiting keep nothing (their futures, their
    # handlers' closures) alive for the collector to walk.
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1)]))
    waiting = d.hold("long", ResourceVector(cpu=1e9, memory=1), None)  # fits nowhere
    for k in range(2):
        assert d.hold(f"a{k}", ONE, "a").result() == "a"
    later = d.hold("t", ONE, "a")  # waits for "a"'s credit...
    d.complete("a0")  # ...which a result gives back: "a" takes it
    assert later.result() == "a"
    d.complete("t")
    del later
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, HeldTask) and o.task_id == "t"]
    assert not waiting.done()


async def test_replaced_holds_that_ended_do_not_pile_up_in_the_sweeps_list() -> None:
    # A task held again replaces its first hold under its id; should the
    # first then end (its handler cancelled), only the list's bound drops it.
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1)]))
    huge = ResourceVector(cpu=1e9, memory=1)  # fits nowhere: held for good
    d.hold("long", huge, None)
    for _ in range(1100):
        d.hold("dup", huge, None).cancel()
    assert len(d._by_age) <= 2 * len(d.held) + 1024 + 1


async def test_admitted_work_its_placed_node_can_start_stays_there() -> None:
    d = dispatcher()
    d.on_snapshot(snapshot([N("a", slots=1), N("b", slots=1)]))
    loop = asyncio.get_running_loop()
    for k in range(2):
        assert d.hold(f"a{k}", ONE, "a", future=loop.create_future()).result() == "a"
    assert d.hold("a2", ONE, "a", future=loop.create_future()).result() == "b"
    assert d.stolen_total == 1


def _full_but(d: Dispatcher, full: list[str], partly: dict[str, int]) -> None:
    """Fill each node of ``full`` to its credit (two: one slot) and hold
    ``partly``'s counts on the others."""
    loop = asyncio.get_running_loop()
    for node_id in full:
        for k in range(2):
            assert d.hold(f"{node_id}{k}", ONE, node_id, future=loop.create_future()).done()
    for node_id, count in partly.items():
        for k in range(count):
            assert d.hold(f"{node_id}{k}", ONE, node_id, future=loop.create_future()).done()


async def test_the_hold_after_a_room_test_takes_the_only_node_it_found() -> None:
    # The gate tests the room (could_start), then holds the admitted task:
    # the node the test found last in its walk is the only one with room,
    # and the hold dispatches there without walking the open nodes again.
    d = dispatcher()
    d.on_snapshot(snapshot([N("busy", slots=1), N("idle", slots=2)]))
    _full_but(d, ["busy"], {"idle": 1})
    assert d.could_start(np.array([1.0, 1.0, 0.0]))

    def walked() -> list[NodeView]:
        raise AssertionError("walked the open nodes again")

    d._open_nodes = walked  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    assert d.hold("t", ONE, "busy", future=loop.create_future()).result() == "idle"


async def test_a_result_between_the_room_test_and_the_hold_makes_the_hold_look_again() -> None:
    # The test found "idle" the only node with room; then a result gives "c"
    # room, and "c" is the less loaded: the hold picks among both.
    d = dispatcher()
    d.on_snapshot(snapshot([N("busy", slots=1), N("c", slots=1), N("idle", slots=2)]))
    _full_but(d, ["busy", "c"], {"idle": 3})
    assert d.could_start(np.array([1.0, 1.0, 0.0]))
    d.complete("c0")
    loop = asyncio.get_running_loop()
    assert d.hold("t", ONE, "busy", future=loop.create_future()).result() == "c"


async def test_a_snapshot_between_the_room_test_and_the_hold_makes_the_hold_look_again() -> None:
    # The test found "idle"; then a snapshot puts it on probation: no new work there.
    d = dispatcher()
    nodes = [N("busy", slots=1), N("idle", slots=2)]
    d.on_snapshot(snapshot(nodes))
    _full_but(d, ["busy"], {})
    assert d.could_start(np.array([1.0, 1.0, 0.0]))
    d.on_snapshot(snapshot([nodes[0], N("idle", slots=2, on_probation=True)], seq=2))
    loop = asyncio.get_running_loop()
    held = d.hold("t", ONE, "busy", future=loop.create_future())
    assert not held.done()
    assert "idle" not in d.where.values()


async def test_a_dispatch_between_the_room_test_and_the_hold_makes_the_hold_look_again() -> None:
    # The test found room for one more on "idle" (whose own queue holds a
    # task too big for it, so it steals nothing; "small" has credit but no
    # room); then the sweep sends work that waited for "busy" there, and
    # "idle" is full.
    clock = Clock(100.0)
    d = dispatcher(clock)
    nodes = [N("busy", slots=1), N("small", capacity=0.5), N("idle", slots=1, capacity=10.0)]
    d.on_snapshot(snapshot(nodes))
    _full_but(d, ["busy"], {"idle": 1})
    d.hold("big", ResourceVector(cpu=100, memory=100), "idle")
    waited = d.hold("q", ONE, "busy")
    assert not waited.done()
    assert d.could_start(np.array([1.0, 1.0, 0.0]))
    clock.now += 3.0
    d.sweep()
    assert waited.result() == "idle"
    held = d.hold("t", ONE, "busy", future=asyncio.get_running_loop().create_future())
    assert not held.done()
    assert d.credit("idle") == 0
