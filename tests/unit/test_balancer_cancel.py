"""Cancelling at the balancer: held work released, later arrivals dropped, answers right."""

from __future__ import annotations

import asyncio

from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.handlers import BalancerHandlers
from boson_shared.contract.messages import (
    CancelAnswer,
    CancelTask,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import Names
from tests.support.balancer import N, snapshot
from tests.support.fakes import Published

NAMES = Names("bal-cancel")
DEMAND = ResourceVector(cpu=1, memory=1)


def balancer(published: Published) -> BalancerHandlers:
    dispatcher = Dispatcher(
        credit_per_slot=1, hot_threshold=0.9, retarget_after_s=60.0, imbalance_threshold=10.0
    )
    return BalancerHandlers(dispatcher, NAMES, published, park_after_s=600.0)


def placed(task_id: str, node: str | None = "a") -> TaskPlaced:
    task = TaskSubmitted(task_id=task_id, handler="noop", reply_to="c1")
    return TaskPlaced(task=task, demand=DEMAND, node_id=node, strategy="binpack")


def cancel(*task_ids: str) -> CancelTask:
    return CancelTask(task_ids=task_ids, reply_to="canceller")


def answers(emits: object) -> dict[str, str]:
    found = [e.message for e in emits]  # type: ignore[attr-defined]
    assert all(isinstance(a, CancelAnswer) and a.source == "balancer" for a in found)
    return {a.task_id: a.verdict for a in found}


async def test_a_held_task_is_released_and_reported_cancelled_with_its_credit_back() -> None:
    published = Published()
    handlers = balancer(published)
    handlers.dispatcher.on_snapshot(snapshot([N("a", slots=1)]))
    first = asyncio.ensure_future(handlers.on_placed(placed("t1")))
    held = asyncio.ensure_future(handlers.on_placed(placed("t2")))
    await asyncio.sleep(0.01)
    assert "t2" in handlers.dispatcher.held  # a has credit for one task only
    assert answers(await handlers.on_event(cancel("t2", "t1"))) == {"t2": "cancelled"}
    (emit,) = await asyncio.wait_for(held, 1)
    result = emit.message
    assert isinstance(result, TaskResult)
    assert (result.status, result.task_id, result.message_id) == ("cancelled", "t2", "t2.result")
    assert emit.route.routing_key == "result.c1"
    assert "t2" not in handlers.dispatcher.held
    await first
    # t1 went to a node: the executor answers for it; t2 never was assigned.
    assigned = [m for m in published.messages if isinstance(m, TaskAssigned)]
    assert [m.task.task_id for m in assigned] == ["t1"]


async def test_a_task_cancelled_before_it_arrives_is_never_dispatched() -> None:
    published = Published()
    handlers = balancer(published)
    handlers.dispatcher.on_snapshot(snapshot([N("a", slots=4)]))
    assert answers(await handlers.on_event(cancel("t3"))) == {}
    (emit,) = await handlers.on_placed(placed("t3"))
    assert isinstance(emit.message, TaskResult)
    assert emit.message.status == "cancelled"
    assert published.messages == []
    orphan = TaskAssigned(task=placed("t3").task, demand=DEMAND, node_id="dead", dispatch=1)
    (again,) = await handlers.on_orphan(orphan)
    assert isinstance(again.message, TaskResult)
    assert again.message.status == "cancelled"
    assert published.messages == []


async def test_a_finished_task_is_said_to_have_finished() -> None:
    handlers = balancer(Published())
    handlers.finished.add("t4")
    assert answers(await handlers.on_event(cancel("t4"))) == {"t4": "finished"}
