"""A task's run on this node: a slot, its start announced, its data, the handler, its output.

:class:`TaskRuns` waits for a slot, announces the start to the task record
(:mod:`boson_services.executor.start_report`), fetches data sent by
reference, runs the handler through the
:class:`~boson_services.executor.pool.TaskRunner` with the task's GPU
binding, and checks that its output can travel (inline, or uploaded when
an uploader is set up). A handler's own exception fails the task at once
(:class:`HandlerRaisedError`) unless its submitter asked for retries.
"""

from __future__ import annotations

from typing import Any

import msgpack

from boson_services.executor.capture import TailBuffer
from boson_services.executor.gpus import ENV_BUDGET, Binding
from boson_services.executor.node_state import NodeState
from boson_services.executor.pool import WORKER_DIED, HandlerFailedError, RunOutcome
from boson_services.executor.start_report import StartReport
from boson_shared.contract.messages import TaskAssigned, TaskSubmitted, task_event
from boson_shared.errors import InvalidTaskInputError, InvalidTaskOutputError, PermanentTaskError
from boson_shared.handlers import HandlerSpec, TaskInput
from boson_shared.runtime.consumer_spec import delivery_attempt
from boson_shared.task_control import TaskControl


class HandlerRaisedError(PermanentTaskError):
    """A handler's own exception, not retried: its submitter did not ask for retries."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class TaskRuns(NodeState):
    """Running a task held here (the node's state:
    :class:`~boson_services.executor.node_state.NodeState`)."""

    async def _hold_slot_and_run(
        self,
        spec: HandlerSpec,
        assigned: TaskAssigned,
        binding: Binding,
        control: TaskControl,
        output: TailBuffer,
        announced: list[StartReport],
    ) -> RunOutcome:
        """Wait for a slot and run the task (an asyncio task of its own: a cancel stops it)."""
        async with self.slots:
            self.running += 1
            # The start is announced (or withdrawn, the result carrying it)
            # while the task runs, and its confirm awaited after the slot is
            # free: a slot never waits on the broker.
            start = self._announce_start(assigned)
            if start is not None:
                announced.append(start)
            try:
                return await self._run(spec, assigned.task, binding, control, output)
            finally:
                self.running -= 1

    def _announce_start(self, assigned: TaskAssigned) -> StartReport | None:
        if self.report is None:
            return None
        attempt = delivery_attempt.get()
        event = task_event(
            assigned.task,
            "started",
            "executor",
            message_id=f"{assigned.task.task_id}.s{assigned.dispatch}.{attempt}",
            node_id=self.node_id,
            dispatch=assigned.dispatch,
            attempt=attempt,
        )
        return StartReport(event, self.report, self.start_hold_s)

    async def _run(
        self,
        spec: HandlerSpec,
        task: TaskSubmitted,
        binding: Binding,
        control: TaskControl,
        output: TailBuffer,
    ) -> RunOutcome:
        data = task.data
        if task.data_ref is not None:
            if self.fetch is None:
                raise InvalidTaskInputError("task data is a reference but no data plane is set up")
            data = await self.fetch(task.data_ref)
        task_input = TaskInput(
            task_id=task.task_id,
            data=data,
            params=task.params,
            attempt=delivery_attempt.get(),
            gpu_devices=binding.device_ids,
            gpu_memory_budget_mib=binding.memory_budget_mib,
            control=control,
        )
        # On a node with GPUs every worker is told its devices (none for a
        # task without GPU); elsewhere the environment is left alone.
        env: dict[str, str | None] | None = None
        if self.gpus.gpus:
            env = {**binding.env(), **({} if binding.memory_budget_mib else {ENV_BUDGET: None})}
        try:
            return await self.runner.run(spec, task_input, task.timeout_s, output, env)
        except HandlerFailedError as error:
            # Retrying mends a flaky upstream (the handler raises Retry) or a
            # worker that died, not a bug: the task fails at once unless its
            # submitter asked for retries.
            if error.asked_retry or error.error_type == WORKER_DIED or task.retry_errors:
                raise
            raise HandlerRaisedError(error.error_type, error.message) from error

    def _check_output(self, output: Any) -> bytes:
        try:
            packed: bytes = msgpack.packb(output)
        except (TypeError, ValueError, OverflowError) as error:
            raise InvalidTaskOutputError(f"result is not serialisable: {error}") from error
        if len(packed) > self.max_inline_result_bytes and self.upload is None:
            raise InvalidTaskOutputError(
                f"result of {len(packed)} bytes exceeds the inline limit "
                f"of {self.max_inline_result_bytes}"
            )
        return packed


__all__ = ["HandlerRaisedError", "TaskRuns"]
