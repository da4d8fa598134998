"""The balancer's handlers: a placement it gives up on still reaches the client."""

from __future__ import annotations

from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.handler_state import RESULTS_KEPT
from boson_services.balancer.handlers import BalancerHandlers
from boson_shared.contract.messages import (
    Message,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import Names
from boson_shared.runtime.consumer_spec import delivery_redelivered
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import result_route
from tests.support.balancer import N, snapshot
from tests.support.fakes import Published
from tests.support.results import failure_sent

NAMES = Names("bal-test")


async def no_publish(route: Route, message: Message) -> None:
    raise AssertionError("nothing is published when giving up")


def handlers() -> BalancerHandlers:
    dispatcher = Dispatcher(
        credit_per_slot=2, hot_threshold=0.9, retarget_after_s=2.0, imbalance_threshold=0.25
    )
    return BalancerHandlers(dispatcher, NAMES, no_publish, park_after_s=60.0)


TASK = TaskSubmitted(task_id="t1", handler="noop", reply_to="c1")
DEMAND = ResourceVector(cpu=1, memory=1)


async def test_a_placement_given_up_on_becomes_a_failed_result() -> None:
    balancer = handlers()
    placed = TaskPlaced(task=TASK, demand=DEMAND, node_id=None, strategy="binpack")
    (emit,) = await balancer.on_placed_exhausted(placed, RuntimeError("stuck"), 4)
    assert failure_sent(emit, NAMES, "c1", attempts=4).message == "stuck"


async def test_an_orphan_given_up_on_is_released_and_reported() -> None:
    balancer = handlers()
    balancer.dispatcher.hold("t1", DEMAND, None)  # held: no node known yet
    assert "t1" in balancer.dispatcher.held
    assigned = TaskAssigned(task=TASK, demand=DEMAND, node_id="dead-node")
    (emit,) = await balancer.on_orphan_exhausted(assigned, RuntimeError("stuck"), 2)
    assert "t1" not in balancer.dispatcher.held
    assert failure_sent(emit, NAMES, "c1", attempts=2).message == "stuck"


async def test_an_envelope_of_results_frees_its_credit_then_pumps_once() -> None:
    balancer = handlers()
    d = balancer.dispatcher
    d.on_snapshot(snapshot([N("a", slots=2)]))  # credit 4
    held = {f"t{i}": d.hold(f"t{i}", DEMAND, None) for i in range(10)}
    assert sum(f.done() for f in held.values()) == 4
    pumps = d.pumps
    results = [
        TaskResult(
            task_id=f"t{i}",
            handler="noop",
            status="succeeded",
            node_id="a",
            reply_to="c1",
            submitted_at=0.0,
        )
        for i in range(3)
    ]
    assert await balancer.on_events(results) == []
    assert d.pumps == pumps + 1  # one pump for the envelope, not one per result
    assert sum(f.done() for f in held.values()) == 7  # the three freed slots refilled
    assert d.credit("a") == 0


def succeeded(task_id: str) -> TaskResult:
    return TaskResult(
        task_id=task_id,
        handler="noop",
        status="succeeded",
        node_id="a",
        reply_to="c1",
        submitted_at=0.0,
    )


async def test_a_redelivered_placement_of_a_finished_task_is_not_dispatched_again() -> None:
    # After a broker restart the placed queue redelivers placements whose
    # tasks already ran: their assignments went to a node, which answers
    # them, so those copies are dropped, not run again.
    balancer = handlers()
    d = balancer.dispatcher
    d.on_snapshot(snapshot([N("a", slots=2)]))
    await balancer.on_events([succeeded("t1"), succeeded("t1")])
    placed = TaskPlaced(task=TASK, demand=DEMAND, node_id="a", strategy="binpack")
    token = delivery_redelivered.set(True)
    try:
        assert await balancer.on_placed(placed) == []
    finally:
        delivery_redelivered.reset(token)
    assert "t1" not in d.held
    assert d.dispatched_total == 0
    assert balancer.skipped_finished == 1


async def test_a_dead_nodes_leftover_of_a_finished_task_sends_its_result_again() -> None:
    # The result went by the balancer's queue, but a fan-out publish the
    # broker nacked (the client's reply queue electing a leader) may have
    # reached every queue but the client's; the node handed the assignment
    # back and died, or was declared down. Dropping the leftover loses the
    # result; the balancer sends the one it saw instead, without a rerun.
    balancer = handlers()
    d = balancer.dispatcher
    d.on_snapshot(snapshot([N("a", slots=2)]))
    done = succeeded("t1")
    await balancer.on_events([done])
    orphan = TaskAssigned(task=TASK, demand=DEMAND, node_id="dead-node")
    (emit,) = await balancer.on_orphan(orphan)
    assert emit.message == done
    assert emit.route == result_route(NAMES, "c1")
    assert d.dispatched_total == 0
    assert "t1" not in d.held
    assert balancer.replayed_total == 1


async def test_a_leftover_whose_result_is_no_longer_kept_runs_again() -> None:
    publish = Published()
    balancer = BalancerHandlers(handlers().dispatcher, NAMES, publish, park_after_s=60.0)
    balancer.dispatcher.on_snapshot(snapshot([N("a", slots=2)]))
    await balancer.on_events([succeeded("t1")])
    await balancer.on_events([succeeded(f"later-{i}") for i in range(RESULTS_KEPT)])
    assert "t1" in balancer.finished
    orphan = TaskAssigned(task=TASK, demand=DEMAND, node_id="dead-node")
    await balancer.on_orphan(orphan)
    assert [type(m) for m in publish.messages] == [TaskAssigned]
    assert balancer.replayed_total == 0


async def test_a_fresh_submission_of_a_finished_task_id_is_still_dispatched() -> None:
    # Not a leftover (not redelivered): the executor answers it with its replay.
    publish = Published()
    balancer = BalancerHandlers(handlers().dispatcher, NAMES, publish, park_after_s=60.0)
    balancer.dispatcher.on_snapshot(snapshot([N("a", slots=2)]))
    balancer.finished.add("t1")
    placed = TaskPlaced(task=TASK, demand=DEMAND, node_id="a", strategy="binpack")
    await balancer.on_placed(placed)
    assert [type(m) for m in publish.messages] == [TaskAssigned]
    assert balancer.skipped_finished == 0
