"""The executor's handling of assignments: results, repeats, bad output."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from boson_services.executor.handlers import ExecutorHandlers
from boson_services.executor.pool import HandlerFailedError, TaskRunner
from boson_services.executor.result_fields import to_wire
from boson_services.executor.task_runs import HandlerRaisedError
from boson_shared.contract.messages import (
    Alert,
    ResourceVector,
    TaskAssigned,
    TaskResult,
    TaskRetrying,
    TaskSubmitted,
)
from boson_shared.errors import InvalidTaskOutputError, PermanentTaskError, UnknownHandlerError
from tests.unit.executor.conftest import BUILTINS, SAMPLE_HANDLERS, executor_handlers


@pytest.fixture
async def handlers() -> AsyncIterator[ExecutorHandlers]:
    runner = TaskRunner(2, start_method="forkserver")
    yield executor_handlers(runner, [BUILTINS, SAMPLE_HANDLERS])
    await runner.close()


def assigned(handler: str, task_id: str = "task-1", **params: object) -> TaskAssigned:
    task = TaskSubmitted(task_id=task_id, handler=handler, params=params, reply_to="client-1")
    return TaskAssigned(task=task, demand=ResourceVector(cpu=1, memory=1), node_id="n1")


async def test_a_result_goes_to_the_clients_routing_key(handlers: ExecutorHandlers) -> None:
    emits = await handlers.on_assigned(assigned("noop", echo=3))
    (emit,) = emits
    assert emit.route.routing_key == "result.client-1"
    assert isinstance(emit.message, TaskResult)
    assert emit.message.output == 3
    assert emit.message.node_id == "n1"
    assert emit.message.usage is not None


async def test_the_same_task_id_never_runs_twice(handlers: ExecutorHandlers) -> None:
    assert await handlers.on_assigned(assigned("noop"))
    await handlers.on_assigned(assigned("noop"))
    assert handlers.results["succeeded"] == 1


async def test_a_redelivered_finished_task_sends_its_result_again(
    handlers: ExecutorHandlers,
) -> None:
    # The first result's publish may have died with the connection (the
    # delivery came back because it was never acked): without a second copy
    # the task would be lost.
    (first,) = await handlers.on_assigned(assigned("noop", echo=1))
    (again,) = await handlers.on_assigned(assigned("noop", echo=1))
    assert again.message == first.message
    assert again.route == first.route
    assert handlers.results["succeeded"] == 1


async def test_a_redelivered_failed_task_sends_its_failure_again(
    handlers: ExecutorHandlers,
) -> None:
    error = RuntimeError("boom")
    (first,) = await handlers.on_exhausted(assigned("noop"), error, 3)
    (again,) = await handlers.on_assigned(assigned("noop"))
    assert again.message == first.message
    assert handlers.results == {"succeeded": 0, "failed": 1, "cancelled": 0}


async def test_a_finished_task_whose_result_is_no_longer_kept_runs_again() -> None:
    # Its result's publish failed and its delivery came back after more
    # tasks finished here than results are kept: dropping the repeat as done
    # would lose its result for good, so it runs again.
    runner = TaskRunner(2, start_method="forkserver")
    try:
        handlers = executor_handlers(runner, [BUILTINS], replay_memory=2)
        (first,) = await handlers.on_assigned(assigned("noop", "a", echo=1))
        for number in range(3):
            await handlers.on_assigned(assigned("noop", f"other-{number}"))
        assert "a" in handlers.completed
        (again,) = await handlers.on_assigned(assigned("noop", "a", echo=1))
        assert isinstance(again.message, TaskResult)
        assert again.message.message_id == first.message.message_id  # the client shows one
        assert again.message.output == 1
        assert again.route == first.route
        assert handlers.results["succeeded"] == 5  # it ran twice
        # Kept again now: a further repeat is answered from the store.
        assert await handlers.on_assigned(assigned("noop", "a", echo=1)) == [again]
        assert handlers.results["succeeded"] == 5
    finally:
        await runner.close()


async def test_a_failed_task_whose_failure_is_no_longer_kept_fails_again() -> None:
    runner = TaskRunner(2, start_method="forkserver")
    try:
        handlers = executor_handlers(runner, [BUILTINS, SAMPLE_HANDLERS], replay_memory=2)
        message = assigned("explode", "a")
        (first,) = await handlers.on_exhausted(message, ValueError("boom"), 1)
        for number in range(3):
            await handlers.on_assigned(assigned("noop", f"other-{number}"))
        # The redelivery runs it again, it fails again, and the consume loop
        # hands the failure to on_exhausted, which reports it (not nothing).
        with pytest.raises(HandlerRaisedError) as raised:
            await handlers.on_assigned(message)
        (again,) = await handlers.on_exhausted(message, raised.value, 1)
        assert isinstance(again.message, TaskResult)
        assert again.message.message_id == first.message.message_id
        assert again.message.status == "failed"
        assert handlers.results["failed"] == 2
    finally:
        await runner.close()


async def test_an_unknown_handler_is_a_permanent_error(handlers: ExecutorHandlers) -> None:
    with pytest.raises(UnknownHandlerError):
        await handlers.on_assigned(assigned("no-such-handler"))


async def test_numpy_output_is_converted(handlers: ExecutorHandlers) -> None:
    (emit,) = await handlers.on_assigned(assigned("matrix"))
    assert isinstance(emit.message, TaskResult)
    assert emit.message.output == [[1.0, 0.0], [0.0, 1.0]]


async def test_output_over_the_inline_limit_is_refused(handlers: ExecutorHandlers) -> None:
    with pytest.raises(InvalidTaskOutputError, match="inline limit"):
        await handlers.on_assigned(assigned("noop", echo="x" * 10_000))


async def test_anomalies_raise_alerts(handlers: ExecutorHandlers) -> None:
    values = [0.0] * 50 + [100.0] + [0.0, 1.0] * 20
    emits = await handlers.on_assigned(assigned("anomaly", values=values))
    alerts = [e.message for e in emits if isinstance(e.message, Alert)]
    assert len(alerts) == 1
    assert alerts[0].reason == "anomaly"
    assert alerts[0].task_id == "task-1"


async def test_exhausted_reports_one_failed_result(handlers: ExecutorHandlers) -> None:
    message = assigned("explode")
    (emit,) = await handlers.on_exhausted(message, ValueError("boom"), 4)
    assert isinstance(emit.message, TaskResult)
    assert emit.message.status == "failed"
    assert emit.message.attempts == 4
    assert emit.message.error is not None
    assert emit.message.error.retryable
    # A repeat sends the same result again (same id: the client shows it once).
    assert await handlers.on_exhausted(message, ValueError("boom"), 4) == [emit]
    assert handlers.results["failed"] == 1


def test_to_wire_handles_nested_numpy() -> None:
    import numpy as np

    assert to_wire({"a": np.float64(1.5), "b": (np.int32(2), [np.arange(2)])}) == {
        "a": 1.5,
        "b": [2, [[0, 1]]],
    }


async def test_a_user_exception_fails_the_task_at_once(handlers: ExecutorHandlers) -> None:
    with pytest.raises(HandlerRaisedError) as caught:
        await handlers.on_assigned(assigned("explode"))
    assert isinstance(caught.value, PermanentTaskError)  # no retry tier for it
    (emit,) = await handlers.on_exhausted(assigned("explode"), caught.value, 1)
    assert isinstance(emit.message, TaskResult)
    error = emit.message.error
    assert error is not None
    assert error.error_type == "ValueError"
    assert error.message.startswith("boom\n")  # "ValueError: " once, by whoever prints it
    assert "sample_handlers.py" in error.message


async def test_a_user_exception_is_retried_when_the_submitter_asked(
    handlers: ExecutorHandlers,
) -> None:
    message = assigned("explode")
    asked = message.model_copy(
        update={"task": message.task.model_copy(update={"retry_errors": True})}
    )
    with pytest.raises(HandlerFailedError) as caught:
        await handlers.on_assigned(asked)
    assert not isinstance(caught.value, PermanentTaskError)


async def test_a_handler_raising_retry_is_retried_and_the_submitter_told(
    handlers: ExecutorHandlers,
) -> None:
    message = assigned("flaky")
    with pytest.raises(HandlerFailedError) as caught:
        await handlers.on_assigned(message)
    assert caught.value.asked_retry
    (emit,) = await handlers.on_retry(message, caught.value, 1, 1000)
    assert emit.route.routing_key == "retrying.client-1"
    assert isinstance(emit.message, TaskRetrying)
    assert (emit.message.attempt, emit.message.retry_in_s) == (1, 1.0)
    assert emit.message.error.error_type == "Retry"
    assert emit.message.error.message.startswith("upstream busy")


async def test_a_task_redone_after_its_node_died_counts_the_attempt(
    handlers: ExecutorHandlers,
) -> None:
    redone = assigned("noop").model_copy(update={"dispatch": 2})
    (emit,) = await handlers.on_assigned(redone)
    assert isinstance(emit.message, TaskResult)
    assert emit.message.attempts == 2


async def test_no_internal_class_name_reaches_the_submitter(handlers: ExecutorHandlers) -> None:
    message = assigned("stats", values="oops")  # runs in a worker process
    with pytest.raises(PermanentTaskError) as caught:
        await handlers.on_assigned(message)
    (emit,) = await handlers.on_exhausted(message, caught.value, 1)
    assert isinstance(emit.message, TaskResult)
    assert emit.message.error is not None
    assert emit.message.error.error_type == "InvalidTaskInputError"
