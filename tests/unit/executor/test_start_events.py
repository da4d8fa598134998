"""The executor's ``started`` events for the task record: sent, and never holding a slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from boson_services.executor.handlers import ExecutorHandlers
from boson_services.executor.pool import TaskRunner
from boson_services.executor.start_report import Reporter
from boson_shared.contract.messages import (
    ResourceVector,
    TaskAssigned,
    TaskEvent,
    TaskResult,
    TaskSubmitted,
)
from tests.support.waiting import wait_until
from tests.unit.executor.conftest import BUILTINS, executor_handlers


class SlowBroker:
    """A reporter whose confirms arrive only when the test lets them."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self.confirm = asyncio.Event()

    async def report(self, event: TaskEvent) -> None:
        self.events.append(event)
        await self.confirm.wait()


@pytest.fixture
async def runner() -> AsyncIterator[TaskRunner]:
    runner = TaskRunner(1, start_method="forkserver")
    yield runner
    await runner.close()


def assigned(task_id: str, dispatch: int = 1) -> TaskAssigned:
    task = TaskSubmitted(task_id=task_id, handler="noop", reply_to="client-1")
    return TaskAssigned(
        task=task, demand=ResourceVector(cpu=1, memory=1), node_id="n1", dispatch=dispatch
    )


def handlers_with(runner: TaskRunner, report: Reporter, hold_s: float) -> ExecutorHandlers:
    """One-slot handlers on node n1 that report starts to `report`, holding them `hold_s`."""
    return executor_handlers(runner, [BUILTINS], slots=1, report=report, start_hold_s=hold_s)


async def test_a_slot_is_free_while_a_start_awaits_its_confirm(runner: TaskRunner) -> None:
    broker = SlowBroker()
    handlers = handlers_with(runner, broker.report, hold_s=0.0)
    first = asyncio.ensure_future(handlers.on_assigned(assigned("t1")))
    second = asyncio.ensure_future(handlers.on_assigned(assigned("t2", dispatch=2)))
    # One slot, confirms held back: both tasks still run.
    await wait_until(lambda: len(broker.events) == 2 and handlers.running == 0, timeout=10)
    assert not first.done()
    broker.confirm.set()
    (result,) = await first
    await second
    assert isinstance(result.message, TaskResult)
    assert [(e.task_id, e.stage, e.node_id, e.dispatch) for e in broker.events] == [
        ("t1", "started", "n1", 1),
        ("t2", "started", "n1", 2),
    ]
    assert broker.events[1].message_id == "t2.s2.1"


class InstantBroker:
    """A reporter that confirms at once, keeping what it was given."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []

    async def report(self, event: TaskEvent) -> None:
        self.events.append(event)


async def test_a_task_done_within_the_hold_has_its_result_carry_the_start(
    runner: TaskRunner,
) -> None:
    broker = InstantBroker()
    handlers = handlers_with(runner, broker.report, hold_s=30.0)
    (emit,) = await handlers.on_assigned(assigned("t1"))
    result = emit.message
    assert isinstance(result, TaskResult)
    assert broker.events == []
    assert result.started_at is not None
    assert result.submitted_at <= result.started_at <= result.finished_at
    # The start's hold ended with the task: nothing is sent later either.
    await asyncio.sleep(0.05)
    assert broker.events == []


async def test_a_task_still_running_after_the_hold_has_its_start_sent_alone(
    runner: TaskRunner,
) -> None:
    broker = InstantBroker()
    handlers = handlers_with(runner, broker.report, hold_s=0.05)
    task = TaskSubmitted(task_id="t2", handler="burn", reply_to="c", params={"seconds": 0.5})
    slow = TaskAssigned(task=task, demand=ResourceVector(cpu=1, memory=1), node_id="n1")
    (emit,) = await handlers.on_assigned(slow)
    result = emit.message
    assert isinstance(result, TaskResult)
    assert [(e.task_id, e.stage) for e in broker.events] == [("t2", "started")]
    assert result.started_at is None
    assert broker.events[0].at <= result.finished_at


async def test_a_failing_task_sends_its_start_before_its_failure(runner: TaskRunner) -> None:
    broker = InstantBroker()
    handlers = handlers_with(runner, broker.report, hold_s=30.0)
    task = TaskSubmitted(task_id="t3", handler="burn", reply_to="c", params={"seconds": -1})
    with pytest.raises(Exception, match="seconds must be"):
        await handlers.on_assigned(
            TaskAssigned(task=task, demand=ResourceVector(cpu=1, memory=1), node_id="n1")
        )
    assert [(e.task_id, e.stage) for e in broker.events] == [("t3", "started")]
