"""Preemption on an executor: the task stops and goes back to the balancer, never a result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from boson_services.executor.census import NodeQueue, on_held_request
from boson_services.executor.handlers import ExecutorHandlers
from boson_shared.contract.messages import (
    CancelTask,
    HeldWork,
    HeldWorkBarrier,
    HeldWorkRequest,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import RK_PARKED, rk_held_work, rk_node
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route
from tests.support.waiting import wait_until
from tests.unit.executor.conftest import NAMES


def assigned(
    handler: str, task_id: str, *, dispatch: int = 1, preempted: int = 0, **params: object
) -> TaskAssigned:
    task = TaskSubmitted(task_id=task_id, handler=handler, params=params, reply_to="client-1")
    return TaskAssigned(
        message_id=f"{task_id}.a{dispatch}",
        task=task,
        demand=ResourceVector(cpu=1, memory=1),
        node_id="n1",
        dispatch=dispatch,
        preempted=preempted,
    )


def starts(directory: Path) -> int:
    """How many starts the handlers recorded there."""
    return len(list(directory.iterdir()))


async def until(condition: Callable[[], bool]) -> None:
    await wait_until(condition, timeout=30.0, step=0.01)


def preempt(*task_ids: str, node_id: str = "n1") -> CancelTask:
    return CancelTask(task_ids=task_ids, reply_to="balancer-1", reason="preempted", node_id=node_id)


def handed_back(emits: Sequence[Emit]) -> TaskPlaced:
    (emit,) = emits
    assert isinstance(emit.message, TaskPlaced)
    assert (emit.route.exchange, emit.route.routing_key) == (NAMES.work_exchange, RK_PARKED)
    assert emit.route.mandatory
    return emit.message


@pytest.mark.parametrize("handler", ["steer_thread", "steer_async", "steer_process"])
async def test_a_running_task_is_stopped_and_handed_back_not_reported(
    handlers: ExecutorHandlers, handler: str, tmp_path: Path
) -> None:
    run = asyncio.ensure_future(
        handlers.on_assigned(assigned(handler, "t1", dispatch=2, seconds=30, starts=str(tmp_path)))
    )
    await until(lambda: starts(tmp_path) == 1)
    started = time.monotonic()
    assert await handlers.on_cancel(preempt("t1")) == []  # nobody is answered
    placed = handed_back(await asyncio.wait_for(run, 10))
    assert time.monotonic() - started < 5.0
    assert placed.task.task_id == "t1"
    assert placed.message_id == "t1.p2"
    assert (placed.dispatched, placed.preempted, placed.node_id) == (2, 1, None)
    assert handlers.active == {}
    assert handlers.running == 0
    assert handlers.results == {"succeeded": 0, "failed": 0, "cancelled": 0}
    assert handlers.cancels.preempted == 1
    # Neither cancelled nor finished here: its next dispatch runs, to the end,
    # and its preempted run counts as no attempt.
    again = await handlers.on_assigned(assigned("steer_async", "t1", dispatch=3, preempted=1))
    (emit,) = again
    assert isinstance(emit.message, TaskResult)
    assert emit.message.status == "succeeded"
    assert emit.message.attempts == 2  # dispatches 1 and 3 ran; 2 was preempted


async def test_a_preemption_for_another_node_or_a_finished_task_changes_nothing(
    handlers: ExecutorHandlers, tmp_path: Path
) -> None:
    run = asyncio.ensure_future(
        handlers.on_assigned(assigned("steer_async", "t2", seconds=0.3, starts=str(tmp_path)))
    )
    await until(lambda: starts(tmp_path) == 1)
    assert await handlers.on_cancel(preempt("t2", node_id="n2")) == []
    (emit,) = await asyncio.wait_for(run, 10)
    assert isinstance(emit.message, TaskResult)
    assert emit.message.status == "succeeded"
    assert await handlers.on_cancel(preempt("t2")) == []
    assert "t2" not in handlers.cancels  # never taken for a cancel


async def test_a_task_preempted_before_it_arrives_is_handed_back_once_on_arrival(
    handlers: ExecutorHandlers, tmp_path: Path
) -> None:
    assert await handlers.on_cancel(preempt("t3")) == []
    placed = handed_back(
        await handlers.on_assigned(assigned("steer_async", "t3", starts=str(tmp_path)))
    )
    assert (placed.dispatched, placed.preempted) == (1, 1)
    assert starts(tmp_path) == 0
    # Its next dispatch (to this node again) runs.
    (emit,) = await handlers.on_assigned(
        assigned("steer_async", "t3", dispatch=2, preempted=1, starts=str(tmp_path))
    )
    assert isinstance(emit.message, TaskResult)
    assert emit.message.status == "succeeded"
    assert emit.message.attempts == 1


async def test_it_tells_a_balancer_that_took_over_what_it_holds(
    handlers: ExecutorHandlers, tmp_path: Path
) -> None:
    job = assigned("steer_async", "t1", seconds=30, starts=str(tmp_path))
    job = job.model_copy(
        update={"task": job.task.model_copy(update={"tenant": "research", "priority": 7})}
    )
    run = asyncio.ensure_future(handlers.on_assigned(job))
    await until(lambda: starts(tmp_path) == 1)
    request = HeldWorkRequest(reply_to="balancer-2")
    emit, barrier = on_held_request(handlers, request)
    assert emit.route == Route(NAMES.events_exchange, rk_held_work("balancer-2"))
    work = emit.message
    assert isinstance(work, HeldWork)
    assert (work.node_id, work.request_id, work.complete) == ("n1", request.message_id, False)
    assert [(t.task_id, t.tenant, t.priority, t.demand) for t in work.tasks] == [
        ("t1", "research", 7, ResourceVector(cpu=1, memory=1))
    ]
    # Its barrier goes into its own node queue, behind the work queued there.
    assert barrier.route == Route(NAMES.work_exchange, rk_node("n1"), mandatory=True)
    assert isinstance(barrier.message, HeldWorkBarrier)
    assert (barrier.message.request_id, barrier.message.reply_to) == (
        request.message_id,
        "balancer-2",
    )
    await handlers.on_cancel(preempt("t1"))
    await asyncio.wait_for(run, 10)
    # When the barrier comes out of the queue: the complete answer.
    assert isinstance(barrier.message, HeldWorkBarrier)
    (complete,) = await NodeQueue(handlers).on_message(barrier.message)
    after = complete.message
    assert isinstance(after, HeldWork)
    assert (after.request_id, after.complete, after.tasks) == (request.message_id, True, ())
