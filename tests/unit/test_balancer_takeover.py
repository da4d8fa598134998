"""A balancer that takes over admission counts the work already running.

Its predecessor admitted work that still runs on the executors; the new
active balancer asks them what they hold before its first admission pass,
and charges those tasks to their tenants until their results come back.
"""

from __future__ import annotations

from boson_services.balancer.takeover import CENSUS_WAIT_S
from boson_shared.contract.messages import HeldTask, HeldWork, HeldWorkRequest
from tests.support.tenants_balancer import GRACE_S, ONE, Balancer


def running(task_id: str, tenant: str) -> HeldTask:
    return HeldTask(task_id=task_id, tenant=tenant, demand=ONE)


async def test_a_balancer_that_takes_over_counts_what_runs_against_its_tenant() -> None:
    # c may use 1 CPU and no more; the previous balancer admitted old-c on n1.
    balancer = Balancer(before={"n1": [running("old-c", "c")]})
    await balancer.start()
    balancer.place("c1", "c")
    await balancer.settle()
    (request,) = [m for m in balancer.published.messages if isinstance(m, HeldWorkRequest)]
    assert request.reply_to == balancer.handlers.instance_id
    assert balancer.gate.admission.usage("c")[0] == 1.0
    assert balancer.assigned_ids() == []  # c is at its ceiling already
    await balancer.finish("old-c")
    assert balancer.assigned_ids() == ["c1"]
    assert balancer.gate.admission.usage("c")[0] == 1.0
    assert balancer.gate.adopted_total == 1


async def test_no_admission_until_the_known_nodes_answer_or_time_is_up() -> None:
    balancer = Balancer(before={"n2": [running("old-b", "b")]})
    balancer.silent = {"n1", "n2"}
    await balancer.start()
    balancer.place("a1", "a")
    await balancer.settle()
    assert balancer.assigned_ids() == []  # nobody answered yet
    census = balancer.gate.census
    assert census is not None
    assert census.awaiting == {"n1", "n2"}
    # n2 answers; n1 is still awaited.
    await balancer.handlers.on_event(
        HeldWork(node_id="n2", request_id=census.request_id, tasks=(running("old-b", "b"),))
    )
    await balancer.settle()
    assert balancer.assigned_ids() == []
    assert balancer.gate.admission.usage("b")[0] == 1.0
    # n1 never answers: past the wait, admission goes ahead without it.
    balancer.clock.now += CENSUS_WAIT_S
    assert balancer.gate.admit() == 1
    await balancer.settle()
    assert balancer.assigned_ids() == ["a1"]


async def test_admission_waits_for_the_answer_that_counts_the_queued_work() -> None:
    # c may use 1 CPU and no more. n1's executor holds nothing when asked, but
    # old-c waits in its node queue beyond its prefetch: only the answer its
    # barrier brings (complete) names it.
    balancer = Balancer()
    balancer.silent = {"n1", "n2"}
    await balancer.start()
    balancer.place("c1", "c")
    await balancer.settle()
    census = balancer.gate.census
    assert census is not None
    for node_id in ("n1", "n2"):
        await balancer.handlers.on_event(
            HeldWork(node_id=node_id, request_id=census.request_id, complete=False)
        )
    await balancer.settle()
    assert balancer.assigned_ids() == []  # the queued work is not counted yet
    assert census.awaiting == {"n1", "n2"}
    await balancer.handlers.on_event(
        HeldWork(node_id="n1", request_id=census.request_id, tasks=(running("old-c", "c"),))
    )
    await balancer.handlers.on_event(HeldWork(node_id="n2", request_id=census.request_id))
    await balancer.settle()
    assert balancer.gate.admission.usage("c")[0] == 1.0
    assert balancer.assigned_ids() == []  # c is at its ceiling: c1 waits
    await balancer.finish("old-c")
    assert balancer.assigned_ids() == ["c1"]


async def test_an_answer_to_another_request_or_of_a_finished_task_charges_nothing() -> None:
    balancer = Balancer()
    await balancer.start()
    balancer.place("a1", "a")
    await balancer.settle()
    census = balancer.gate.census
    assert census is not None
    await balancer.handlers.on_event(
        HeldWork(node_id="n1", request_id="someone-else", tasks=(running("x", "b"),))
    )
    await balancer.finish("gone")  # its result came back before the answer
    await balancer.handlers.on_event(
        HeldWork(node_id="n1", request_id=census.request_id, tasks=(running("gone", "b"),))
    )
    assert balancer.gate.admission.usage("b") == (0.0, 0.0, 0.0)
    assert "x" not in balancer.gate.tickets


async def test_adopted_borrowed_work_is_preempted_on_its_node() -> None:
    # b borrowed the whole pool under the previous balancer; a claims its quota.
    before = {
        "n1": [running("b1", "b"), running("b2", "b")],
        "n2": [running("b3", "b"), running("b4", "b")],
    }
    balancer = Balancer(before=before)
    await balancer.start()
    balancer.place("a1", "a")
    await balancer.settle()
    assert balancer.gate.admission.usage("b")[0] == 4.0
    assert balancer.assigned_ids() == []  # the pool is full
    balancer.clock.now += GRACE_S + 0.1
    preemptions = balancer.gate.reclaim()
    assert len(preemptions) == 1
    (preemption,) = preemptions
    assert preemption.node_id in {"n1", "n2"}
    on_it = {t.task_id for t in before[preemption.node_id]}
    assert set(preemption.task_ids) <= on_it
    assert len(preemption.task_ids) == 1


async def test_a_redelivered_placement_of_a_running_task_is_charged_once() -> None:
    # The previous balancer died before acknowledging old-c's placement: it
    # comes back to the new one, which asks the executors while it waits.
    balancer = Balancer(before={"n1": [running("old-c", "c")]})
    await balancer.start()
    balancer.place("old-c", "c")
    balancer.place("c1", "c")
    await balancer.settle()
    assert balancer.gate.admission.usage("c")[0] == 1.0
    assert balancer.gate.admission.waiting("c") == 1
    assert balancer.gate.adopted_total == 1
    # Handled as before: dispatched again (an executor holding it drops the repeat).
    assert balancer.assigned_ids() == ["old-c"]
    await balancer.finish("old-c")
    assert balancer.assigned_ids() == ["old-c", "c1"]
    assert balancer.gate.admission.usage("c")[0] == 1.0
