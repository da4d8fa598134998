"""Cancelling on an executor: held tasks stop, later arrivals never start, answers are right."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import pytest

from boson_services.executor.handlers import ExecutorHandlers
from boson_services.executor.pool import TaskRunner
from boson_shared.contract.messages import (
    CancelAnswer,
    CancelTask,
    ResourceVector,
    TaskAssigned,
    TaskProgress,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route
from tests.unit.executor.conftest import STEERING_HANDLERS, executor_handlers


def assigned(handler: str, task_id: str, **params: object) -> TaskAssigned:
    task = TaskSubmitted(task_id=task_id, handler=handler, params=params, reply_to="client-1")
    return TaskAssigned(task=task, demand=ResourceVector(cpu=1, memory=1), node_id="n1")


def starts(directory: Path) -> int:
    """How many starts the handlers recorded there."""
    return len(list(directory.iterdir()))


def cancel(*task_ids: str) -> CancelTask:
    return CancelTask(task_ids=task_ids, reply_to="canceller")


def verdicts(emits: Sequence[Emit]) -> dict[str, str]:
    answers = [e.message for e in emits]
    assert all(isinstance(a, CancelAnswer) for a in answers)
    return {a.task_id: a.verdict for a in answers if isinstance(a, CancelAnswer)}


def only_result(emits: Sequence[Emit]) -> TaskResult:
    (emit,) = emits
    assert isinstance(emit.message, TaskResult)
    return emit.message


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_cancel_before_the_task_arrives_means_it_never_starts(
    handlers: ExecutorHandlers, tmp_path: Path
) -> None:
    assert await handlers.on_cancel(cancel("t1")) == []  # not held here: silent
    result = only_result(
        await handlers.on_assigned(assigned("steer_thread", "t1", starts=str(tmp_path)))
    )
    assert result.status == "cancelled"
    assert result.message_id == "t1.result"
    assert result.error is None
    assert starts(tmp_path) == 0
    assert handlers.cancels.dropped == 1
    # A repeat of the delivery replays the same outcome; a repeat cancel says so too.
    assert only_result(await handlers.on_assigned(assigned("steer_thread", "t1"))) == result
    assert verdicts(await handlers.on_cancel(cancel("t1"))) == {"t1": "cancelled"}


@pytest.mark.parametrize("handler", ["steer_thread", "steer_async"])
async def test_a_running_task_stops_and_frees_its_slot_at_once(
    handlers: ExecutorHandlers, handler: str, tmp_path: Path
) -> None:
    run = asyncio.ensure_future(
        handlers.on_assigned(assigned(handler, "t2", seconds=30, starts=str(tmp_path)))
    )
    await until(lambda: handlers.running == 1)
    await until(lambda: starts(tmp_path) == 1)
    started = time.monotonic()
    answer = await handlers.on_cancel(cancel("t2"))
    assert verdicts(answer) == {"t2": "cancelled"}
    assert answer[0].route.routing_key == "cancel.answer.canceller"
    result = only_result(await asyncio.wait_for(run, 5))
    assert time.monotonic() - started < 1.0
    assert result.status == "cancelled"
    assert handlers.active == {}
    assert handlers.running == 0
    assert handlers.results["cancelled"] == 1


async def test_a_task_waiting_for_a_slot_is_cancelled_without_starting(
    handlers: ExecutorHandlers, tmp_path: Path
) -> None:
    busy = [
        asyncio.ensure_future(
            handlers.on_assigned(assigned("steer_thread", f"busy{k}", seconds=30))
        )
        for k in range(2)
    ]
    waiting = asyncio.ensure_future(
        handlers.on_assigned(assigned("steer_thread", "t3", seconds=30, starts=str(tmp_path)))
    )
    await until(lambda: handlers.running == 2 and "t3" in handlers.active)
    assert verdicts(await handlers.on_cancel(cancel("t3", "busy0", "busy1"))) == {
        "t3": "cancelled",
        "busy0": "cancelled",
        "busy1": "cancelled",
    }
    assert only_result(await asyncio.wait_for(waiting, 5)).status == "cancelled"
    for run in busy:
        assert only_result(await asyncio.wait_for(run, 5)).status == "cancelled"
    assert starts(tmp_path) == 0


async def test_cancelling_a_finished_task_says_it_had_finished(handlers: ExecutorHandlers) -> None:
    assert only_result(await handlers.on_assigned(assigned("noop", "t4"))).status == "succeeded"
    assert verdicts(await handlers.on_cancel(cancel("t4", "elsewhere"))) == {"t4": "finished"}
    # The outcome stands: a repeat delivery replays the success.
    assert only_result(await handlers.on_assigned(assigned("noop", "t4"))).status == "succeeded"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_process_handler_is_killed_with_what_it_started(
    handlers: ExecutorHandlers, tmp_path: Path
) -> None:
    run = asyncio.ensure_future(
        handlers.on_assigned(assigned("steer_process", "t5", seconds=60, pids=str(tmp_path)))
    )
    pid_file = tmp_path / "t5"
    await until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", timeout=60)
    worker, child = map(int, pid_file.read_text().split())
    assert os.getpgid(child) == worker  # the worker leads the handler's process group
    assert verdicts(await handlers.on_cancel(cancel("t5"))) == {"t5": "cancelled"}
    assert only_result(await asyncio.wait_for(run, 10)).status == "cancelled"
    await until(lambda: not alive(worker) and not alive(child), timeout=5)
    # The slot has a fresh worker: the next task runs.
    assert only_result(await handlers.on_assigned(assigned("noop", "t6"))).status == "succeeded"


async def test_progress_is_coalesced_latest_wins_and_precedes_the_result(
    handlers: ExecutorHandlers,
) -> None:
    sent: list[tuple[Route, TaskProgress]] = []

    async def publish(route: Route, progress: TaskProgress) -> None:
        sent.append((route, progress))

    handlers._publish = publish
    started = time.monotonic()
    result = only_result(
        await handlers.on_assigned(assigned("chatty", "t7", steps=40, pause=0.025))
    )
    took = time.monotonic() - started
    reports = [p for _, p in sent]
    assert all(route.routing_key == "progress.client-1" for route, _ in sent)
    # Forty reports in about a second: at most about two a second go out...
    assert len(reports) <= 2 + took / 0.5
    assert len(reports) >= 2
    # ...the last one is the latest, sent before the result.
    assert reports[-1].fraction == 1.0
    assert reports[-1].message == "step 40 of 40"
    assert result.status == "succeeded"
    assert result.logs is not None
    assert "printed step 40" in result.logs
    assert "logged step 40" in result.logs


async def test_captured_logs_never_hold_the_keys() -> None:
    secret = "k1:" + "A" * 43 + "="
    runner = TaskRunner(1, start_method="forkserver")
    handlers = executor_handlers(
        runner, [STEERING_HANDLERS], slots=1, secrets=("unrelated-secret", secret)
    )
    try:
        for handler in ("chatty", "chatty_process"):
            result = only_result(
                await handlers.on_assigned(
                    assigned(handler, f"t-{handler}", steps=1, pause=0, say=secret)
                )
            )
            assert result.logs is not None
            assert "keys are [redacted]" in result.logs, result.logs
            assert "A" * 43 not in result.logs
    finally:
        await runner.close()
