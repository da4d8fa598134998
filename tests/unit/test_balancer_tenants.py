"""The balancer with tenants: admission before dispatch, release, preemption, refusals."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import numpy as np

from boson_services.balancer.admission_ticket import Ticket
from boson_services.balancer.tenancy import Preemption
from boson_services.balancer.tenants_view import tenants_report
from boson_shared.contract.messages import (
    CancelAnswer,
    CancelTask,
    ResourceVector,
    TaskPlaced,
    TaskResult,
)
from boson_shared.scheduling.tenants import UNKNOWN_TENANT
from tests.support.balancer import N, snapshot
from tests.support.tenants_balancer import GRACE_S, Balancer, placed


async def test_a_tenant_past_its_ceiling_waits_and_a_release_frees_its_quota() -> None:
    balancer = Balancer()
    await balancer.start()
    for task_id in ("c1", "c2", "c3"):
        balancer.place(task_id, "c")
    await balancer.settle()
    # c may use one CPU: one task runs, two wait although the pool is idle.
    assert balancer.assigned_ids() == ["c1"]
    assert balancer.gate.admission.waiting("c") == 2
    await balancer.finish("c1")
    assert balancer.assigned_ids() == ["c1", "c2"]
    assert balancer.gate.admission.usage("c")[0] == 1.0
    await balancer.finish("c2")
    await balancer.finish("c3")
    assert balancer.assigned_ids() == ["c1", "c2", "c3"]
    assert balancer.gate.admission.usage("c") == (0.0, 0.0, 0.0)
    assert balancer.gate.tickets == {}


async def test_within_a_tenant_priority_goes_first() -> None:
    balancer = Balancer()
    await balancer.start()
    balancer.place("c1", "c")
    await balancer.settle()
    balancer.place("low", "c", priority=-5)
    balancer.place("high", "c", priority=50)
    await balancer.settle()
    await balancer.finish("c1")
    await balancer.finish("high")
    assert balancer.assigned_ids() == ["c1", "high", "low"]
    # Tasks that arrive together share one pass: priority orders them too.
    balancer.place("later", "c")
    balancer.place("urgent", "c", priority=1)
    await balancer.settle()
    await balancer.finish("low")
    assert balancer.assigned_ids()[3:] == ["urgent"]


async def test_an_unknown_tenant_is_refused_and_never_reaches_admission() -> None:
    balancer = Balancer()
    await balancer.start()
    (emit,) = await balancer.handlers.on_placed(placed("x1", "nobody"))
    result = emit.message
    assert isinstance(result, TaskResult)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.error_type == UNKNOWN_TENANT
    # Worded as the scheduler's refusal (one builder in boson_shared).
    assert result.error.message == (
        "tenant 'nobody' is not in the tenants file; the known tenants: a, b, c"
    )
    assert balancer.gate.tickets == {}
    assert all(balancer.gate.admission.waiting(name) == 0 for name in ("a", "b", "c"))
    assert balancer.dispatcher.held == {}
    assert balancer.assigned_ids() == []


async def test_a_cancel_takes_a_waiting_task_out_of_its_line() -> None:
    balancer = Balancer()
    await balancer.start()
    balancer.place("c1", "c")
    balancer.place("c2", "c")
    await balancer.settle()
    await balancer.handlers.on_event(CancelTask(task_ids=("c2",), reply_to="someone"))
    (emit,) = await asyncio.wait_for(balancer.runs["c2"], 1)
    assert isinstance(emit.message, TaskResult)
    assert emit.message.status == "cancelled"
    assert balancer.gate.admission.waiting("c") == 0
    assert balancer.gate.admission.pending("c") == (0.0, 0.0, 0.0)


async def test_borrowed_work_is_preempted_after_the_grace_and_comes_back_first() -> None:
    balancer = Balancer()
    await balancer.start()
    for task_id in ("b1", "b2", "b3", "b4", "b5"):
        balancer.place(task_id, "b")
    await balancer.settle()
    # b borrows the whole idle pool; b5 waits for room.
    assert balancer.assigned_ids() == ["b1", "b2", "b3", "b4"]
    balancer.place("a1", "a")
    balancer.place("a2", "a")
    await balancer.settle()
    assert balancer.gate.reclaim() == []  # within the grace period
    balancer.clock.now += GRACE_S - 0.1
    assert balancer.gate.reclaim() == []
    balancer.clock.now += 0.2
    preemptions = balancer.gate.reclaim()
    # The youngest of b's running tasks, as many as a's claim needs.
    stopped = sorted(i for p in preemptions for i in p.task_ids)
    assert stopped == ["b3", "b4"]
    assert all(isinstance(p, Preemption) for p in preemptions)
    where = {p.node_id for p in preemptions}
    assert where <= {"n1", "n2"}
    assert balancer.gate.preempted["b"] == 2
    # Until they are back their room is not free: a reclaim meanwhile stops nothing more.
    balancer.clock.now += 1.0
    assert balancer.gate.reclaim() == []
    # Their executors hand them back; each goes to the front of b's line,
    # and a gets the room they leave.
    for task_id in ("b4", "b3"):
        balancer.place(task_id, "b", dispatched=1, preempted=1)
    await balancer.settle()
    assert balancer.assigned_ids()[4:] == ["a1", "a2"]
    assert balancer.gate.admission.usage("a")[0] == 2.0
    assert balancer.gate.admission.waiting("b") == 3
    # When room frees, the preempted tasks go before b5, oldest first, and
    # as their second dispatch, counted as preempted.
    await balancer.finish("b1")
    await balancer.finish("b2")
    again = balancer.assigned()[6:]
    assert [m.task.task_id for m in again] == ["b3", "b4"]
    assert [(m.message_id, m.dispatch, m.preempted) for m in again] == [
        ("b3.a2", 2, 1),
        ("b4.a2", 2, 1),
    ]
    await balancer.finish("a1")
    assert balancer.assigned_ids()[-1] == "b5"
    # The submitter has seen no result of the preempted runs.
    assert not [m for m in balancer.published.messages if isinstance(m, TaskResult)]


async def test_reclaim_stops_work_only_on_a_node_where_the_claimant_then_fits() -> None:
    balancer = Balancer()
    await balancer.start()
    # Each node runs two one-CPU tasks: n1 b2 and c1 (c within its
    # guarantee), n2 b1 and b3. The youngest of b's work, b3 and b2, is on
    # two nodes: stopping it would free one CPU on each, and a's two-CPU
    # task fits neither.
    for task_id, tenant, node_id in (
        ("b1", "b", "n2"),
        ("b2", "b", "n1"),
        ("c1", "c", "n1"),
        ("b3", "b", "n2"),
    ):
        balancer.place(task_id, tenant, node_id=node_id)
        await balancer.settle()
    assert balancer.dispatcher.where == {"b1": "n2", "b2": "n1", "c1": "n1", "b3": "n2"}
    balancer.place("a1", "a", demand=ResourceVector(cpu=2, memory=2))
    await balancer.settle()
    balancer.clock.now += GRACE_S + 0.5
    preemptions = balancer.gate.reclaim()
    # Node by node: b's two tasks on n2, where a1 then fits; b2 runs on.
    assert [(p.node_id, sorted(p.task_ids)) for p in preemptions] == [("n2", ["b1", "b3"])]
    assert balancer.gate.tickets["b2"].run is not None
    for task_id in ("b3", "b1"):
        balancer.place(task_id, "b", dispatched=1, preempted=1)
    await balancer.settle()
    assert balancer.assigned_ids()[4:] == ["a1"]
    assert balancer.dispatcher.where["a1"] == "n2"


async def test_a_victim_still_held_here_waits_in_its_line_again() -> None:
    balancer = Balancer()
    # n2 counts in the pool but takes no work (on probation): admission sees
    # room the dispatcher cannot use.
    nodes = [N("n1", slots=2, capacity=2.0), N("n2", slots=2, capacity=2.0, on_probation=True)]
    await balancer.handlers.on_event(snapshot(nodes))
    balancer.place("b1", "b")
    balancer.place("b2", "b")
    await balancer.settle()
    assert balancer.assigned_ids() == ["b1", "b2"]
    await _admit_on_a_room_test_that_passed_then(balancer, "b3", "b")
    assert balancer.gate.tickets["b3"].run is not None
    balancer.place("a1", "a")
    balancer.place("a2", "a")
    await balancer.settle()
    balancer.clock.now += GRACE_S + 0.5
    (preemption,) = balancer.gate.reclaim()
    await balancer.settle()
    # Youngest first: b3, held here, waits in b's line again at once (its
    # handler keeps waiting; nothing is sent); b2 is stopped on its node.
    assert preemption == Preemption(balancer.dispatcher.where["b2"], ("b2",))
    assert "b3" not in balancer.dispatcher.held
    assert not balancer.runs["b3"].done()
    assert balancer.gate.tickets["b3"].waiting
    assert balancer.gate.admission.waiting("b") == 1
    assert balancer.gate.admission.usage("b")[0] == 1.0
    # b2 comes back; a takes the room; b3 runs when room frees, first in b's line.
    balancer.place("b2", "b", dispatched=1, preempted=1)
    await balancer.settle()
    assert balancer.assigned_ids()[2:] == ["a1"]
    await balancer.finish("b1")
    assert balancer.assigned_ids()[2:] == ["a1", "a2"]
    # Both went back to the front of b's line, in the order they first came.
    await balancer.finish("a1")
    assert balancer.assigned()[-1].message_id == "b2.a2"
    await balancer.finish("a2")
    assert balancer.assigned()[-1].message_id == "b3.a1"  # it never left: first dispatch


async def test_the_report_names_every_tenant_with_its_share() -> None:
    balancer = Balancer()
    await balancer.start()
    balancer.place("a1", "a")
    balancer.place("c1", "c")
    balancer.place("c2", "c")
    await balancer.settle()
    report = tenants_report(
        balancer.gate, balancer.dispatcher, balancer_id="b-1", seq=1, grace_s=GRACE_S
    )
    assert report.pool == {"cpu": 4.0, "memory": 4.0, "gpu": 0.0}
    by_name = {t.name: t for t in report.tenants}
    assert set(by_name) == {"a", "b", "c"}
    a, c = by_name["a"], by_name["c"]
    assert (a.quota, a.guarantee, a.borrowing_limit) == ({"cpu": 2.0}, {"cpu": 2.0}, {})
    assert a.usage["cpu"] == 1.0
    assert (a.running, a.waiting, a.may_preempt) == (1, 0, True)
    assert (c.running, c.waiting) == (1, 1)
    assert c.pending["cpu"] == 1.0
    assert c.borrowing_limit == {"cpu": 0.0}
    # Without a tenants file: the default tenant owns the pool, ungoverned.
    plain = tenants_report(None, balancer.dispatcher, balancer_id="b-1", seq=2, grace_s=0)
    (only,) = plain.tenants
    assert only.name == "default"
    assert only.usage["cpu"] == 2.0
    assert only.running == 2


async def test_could_start_answers_from_room_and_credit_until_either_changes() -> None:
    balancer = Balancer()
    await balancer.start()
    one = np.array([1.0, 1.0, 0.0])
    three = np.array([3.0, 1.0, 0.0])
    assert balancer.dispatcher.could_start(one)
    assert not balancer.dispatcher.could_start(three)  # 2 CPUs a node
    for task_id in ("b1", "b2", "b3", "b4"):
        balancer.place(task_id, "b")
    await balancer.settle()
    assert not balancer.dispatcher.could_start(one)  # full
    assert not balancer.dispatcher.could_start(one)  # the same answer, remembered
    await balancer.finish("b1")
    assert balancer.dispatcher.could_start(one)  # a result gave room back


async def test_guarantees_follow_the_live_pool() -> None:
    balancer = Balancer()
    await balancer.start()
    assert balancer.gate.admission.guarantee("a")[0] == 2.0
    # n2 goes down: a pool of 2 CPUs for quotas of 3 shrinks each by 2/3.
    nodes = [N("n1", slots=2, capacity=2.0), N("n2", slots=2, capacity=2.0, alive=False)]
    await balancer.handlers.on_event(snapshot(nodes, seq=2))
    assert balancer.gate.admission.pool[0] == 2.0
    assert balancer.gate.admission.guarantee("a")[0] == 2.0 * 2 / 3
    assert balancer.gate.admission.guarantee("c")[0] == 2 / 3


async def test_a_task_waiting_past_the_park_limit_is_parked_and_leaves_its_line() -> None:
    balancer = Balancer()
    balancer.handlers.park_after_s = 60.0
    await balancer.start()
    balancer.place("c1", "c")
    balancer.place("c2", "c")
    await balancer.settle()
    balancer.clock.now += 61.0
    assert balancer.handlers.park_overdue() == 1
    assert await asyncio.wait_for(balancer.runs["c2"], 1) == []
    (parked,) = [m for m in balancer.published.messages if isinstance(m, TaskPlaced)]
    assert (parked.task.task_id, parked.strategy, parked.dispatched) == ("c2", "parked", 0)
    assert balancer.gate.admission.waiting("c") == 0
    assert "c2" not in balancer.gate.tickets


async def ended_behind_a_long_wait(count: int, prefix: str) -> Balancer:
    """A balancer in which ``count`` tasks of tenant ``a`` waited and ended
    behind one of tenant ``c`` that still waits (``c`` runs one task at a time)."""
    balancer = Balancer()
    await balancer.start()
    balancer.place("c0", "c")
    balancer.place("stuck", "c")
    await balancer.settle()
    for n in range(count):
        balancer.place(f"{prefix}{n}", "a")
        await balancer.settle()
        await balancer.finish(f"{prefix}{n}")
    assert balancer.gate.tickets.keys() == {"c0", "stuck"}
    return balancer


async def test_ended_waits_do_not_pile_up_behind_a_long_one() -> None:
    balancer = await ended_behind_a_long_wait(1500, "a")
    assert len(balancer.gate._wait_ids) <= 2 * 2 + 1024 + 1


async def test_an_ended_wait_behind_a_long_one_keeps_no_ticket_alive() -> None:
    await ended_behind_a_long_wait(10, "ended")
    gc.collect()
    kept = [o.task_id for o in gc.get_objects() if isinstance(o, Ticket)]
    assert not [task_id for task_id in kept if task_id.startswith("ended")]


# Small enough that the nodes keep room once their credit is spent.
SMALL = ResourceVector(cpu=0.1, memory=0.1)


async def test_a_pass_with_no_credit_anywhere_offers_one_task() -> None:
    balancer = Balancer()
    await balancer.start()
    for k in range(4):  # two nodes, two credits each
        balancer.place(f"b{k}", "b", demand=SMALL)
    await balancer.settle()
    assert len(balancer.assigned_ids()) == 4
    for tenant in ("a", "b", "c"):
        for k in range(4, 10):
            balancer.place(f"{tenant}{k}", tenant, demand=SMALL)
    await balancer.settle()
    assert balancer.gate.admission.waiting("a") == 6
    # Each offer asks the dispatcher whether the task's demand fits (the gate
    # is compiled: its own methods cannot be wrapped; the dispatcher's can).
    asked: list[object] = []
    could_start = balancer.gate.dispatcher.could_start

    def counting(demand: np.ndarray, models: frozenset[str] | None = None) -> bool:
        asked.append(demand)
        return could_start(demand, models)

    balancer.gate.dispatcher.could_start = counting  # type: ignore[method-assign]
    assert balancer.gate.admit() == 0
    demands = [ticket.demand for ticket in balancer.gate.tickets.values()]
    assert len([d for d in asked if any(d is demand for demand in demands)]) == 1
    # Credit back: the next pass admits again, in admission order.
    await balancer.finish("b0")
    assert len(balancer.assigned_ids()) == 5
    assert balancer.assigned_ids()[-1] == "a4"


async def _admit_on_a_room_test_that_passed_then(
    balancer: Balancer, task_id: str, tenant: str
) -> None:
    """``task_id`` admitted on a room test that passed then: the dispatcher holds it."""
    could_start = balancer.dispatcher.could_start
    balancer.dispatcher.could_start = lambda *_: True  # type: ignore[method-assign]
    balancer.place(task_id, tenant)
    await balancer.settle()
    balancer.dispatcher.could_start = could_start  # type: ignore[method-assign]
    assert task_id in balancer.dispatcher.held


async def _held_victim_preempted(balancer: Balancer) -> None:
    """b1 and b2 run on n1 (n2 is on probation); b3 is admitted on a room test
    that passed then, so the dispatcher holds it; a1's claim, past the grace,
    stops b3 while still held: its handler's wait fails and the task waits in
    b's line again (its handler not yet woken); nothing is stopped on a node."""
    nodes = [N("n1", slots=2, capacity=2.0), N("n2", slots=2, capacity=2.0, on_probation=True)]
    await balancer.handlers.on_event(snapshot(nodes))
    balancer.place("b1", "b")
    balancer.place("b2", "b")
    await balancer.settle()
    await _admit_on_a_room_test_that_passed_then(balancer, "b3", "b")
    balancer.place("a1", "a")
    await balancer.settle()
    balancer.clock.now += GRACE_S + 0.5
    assert balancer.gate.reclaim() == []
    assert balancer.gate.tickets["b3"].waiting


async def test_a_held_victim_admitted_again_before_its_handler_wakes_is_held_once() -> None:
    balancer = Balancer()
    holds: list[str] = []
    hold = balancer.dispatcher.hold

    def counted(task_id: str, *args: Any, **kwargs: Any) -> asyncio.Future[str]:
        holds.append(task_id)
        return hold(task_id, *args, **kwargs)

    balancer.dispatcher.hold = counted  # type: ignore[method-assign]
    await _held_victim_preempted(balancer)
    assert holds == ["b1", "b2", "b3"]
    del holds[:2]  # from b3 on
    # Before b3's handler wakes (the same turn of the loop), results free
    # n1 and a pass admits a1 and b3 again: b3 is held and dispatched.
    for task_id in ("b1", "b2"):
        balancer.dispatcher.complete(task_id)
        balancer.gate.finished(task_id)
        balancer.finished.add(task_id)
    assert balancer.gate.admit() == 2
    assert holds == ["b3", "a1", "b3"]
    await balancer.settle()
    # Its handler, back from the preemption, takes that admission's node: the
    # task is not held a third time, and every dispatch is one published.
    assert holds == ["b3", "a1", "b3"]
    assert sorted(balancer.assigned_ids()) == ["a1", "b1", "b2", "b3"]
    assert balancer.dispatcher.dispatched_total == len(balancer.assigned())
    assert balancer.gate.admission.usage("b")[0] == 1.0
    await balancer.finish("a1")
    await balancer.finish("b3")
    assert not balancer.dispatcher.nodes["n1"].in_flight
    assert balancer.gate.admission.usage("b")[0] == 0.0


async def test_a_held_victim_cancelled_before_its_handler_wakes_is_not_held_again() -> None:
    balancer = Balancer()
    await _held_victim_preempted(balancer)
    assert balancer.gate.admission.waiting("b") == 1
    # Before b3's handler wakes (the same turn of the loop), a cancel names
    # it: the balancer answers for it, as for any task waiting in its line.
    (answer,) = balancer.handlers.on_cancel(CancelTask(task_ids=("b3",), reply_to="someone"))
    assert isinstance(answer.message, CancelAnswer)
    assert answer.message.verdict == "cancelled"
    await balancer.settle()
    # Its handler, back from the preemption, ends with the one cancelled
    # result; the task does not wait in its line again.
    (emit,) = await asyncio.wait_for(balancer.runs["b3"], 1)
    assert isinstance(emit.message, TaskResult)
    assert (emit.message.task_id, emit.message.status) == ("b3", "cancelled")
    assert balancer.handlers.cancelled_total == 1
    assert "b3" not in balancer.gate.tickets
    assert balancer.gate.admission.waiting("b") == 0
    assert balancer.gate.admission.pending("b") == (0.0, 0.0, 0.0)
    assert balancer.gate.admission.usage("b")[0] == 2.0  # b1 and b2 only
    # Room frees: a1 runs; b3 is never held nor dispatched again.
    await balancer.finish("b1")
    await balancer.finish("b2")
    assert balancer.assigned_ids() == ["b1", "b2", "a1"]
    assert "b3" not in balancer.dispatcher.held
    assert balancer.gate.admission.usage("b") == (0.0, 0.0, 0.0)
    await balancer.finish("a1")
    assert balancer.assigned_ids() == ["b1", "b2", "a1"]
    assert balancer.gate.tickets == {}
    assert not [m for m in balancer.published.messages if isinstance(m, TaskResult)]
