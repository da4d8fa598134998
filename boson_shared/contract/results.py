"""What a task's submitter hears back (``task.result``, ``task.retrying``,
``task.progress``): the outcome of every task, failed and cancelled ones too,
the attempts that will run again, and how far a running task has got.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import Field, StringConstraints, model_validator

from boson_shared.contract.base import (
    Count,
    Fraction,
    HandlerName,
    Identifier,
    Message,
    Model,
    NonNegative,
    Timestamp,
    now,
)
from boson_shared.contract.data import DataRef
from boson_shared.contract.resources import ResourceVector
from boson_shared.contract.tasks import TaskSubmitted


class TaskUsage(Model):
    """What a task really used, for the online demand model."""

    wall_s: NonNegative = Field(description="Wall-clock seconds the handler ran.")
    cpu_s: NonNegative = Field(description="CPU seconds the handler used.")
    peak_memory_bytes: Count = Field(description="Peak resident memory in bytes.")


class TaskFailure(Model):
    """Why a task failed: the error type and its message (never secrets)."""

    error_type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    message: Annotated[str, StringConstraints(max_length=4000)]
    retryable: bool = False


MAX_LOG_BYTES = 64 * 1024
"""What a task's captured output keeps: its last 64 KiB."""

TaskOutcome: TypeAlias = Literal["succeeded", "failed", "cancelled"]


class TaskResult(Message):
    """A task's outcome; a failed or cancelled one too, so that no caller waits forever.

    Schema version 2: ``status`` may be ``cancelled`` (the task was stopped,
    or never started, at someone's request: no error, no output), and ``logs``
    carries what the handler printed or logged (its last :data:`MAX_LOG_BYTES`).
    Version 3: ``started_at``, when the task ended before the executor had
    reported its start to the task record (the result reports it instead).
    """

    kind: Literal["task.result"] = "task.result"
    schema_version: ClassVar[int] = 3
    # v1: no cancelled, no logs; v2: no started_at
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2})
    task_id: Identifier
    handler: HandlerName
    status: TaskOutcome
    output: Any = None
    output_ref: DataRef | None = None
    error: TaskFailure | None = None
    node_id: Identifier | None = None
    attempts: Count = 1
    usage: TaskUsage | None = None
    demand: ResourceVector | None = None
    complexity: NonNegative = 0.0
    data_size: NonNegative = 0.0
    reply_to: Identifier
    submitted_at: Timestamp
    finished_at: Timestamp = Field(default_factory=now)
    logs: Annotated[str, StringConstraints(max_length=MAX_LOG_BYTES)] | None = None
    started_at: Timestamp | None = None
    """When this run started, if no ``started`` event of the task record said
    so: the executor holds a start back for a moment and, when the task ends
    within it, sends the start with the result instead of on its own."""

    @model_validator(mode="after")
    def _error_matches_status(self) -> TaskResult:
        if (self.status == "failed") != (self.error is not None):
            raise ValueError("a failed result carries an error, any other result does not")
        return self


class TaskRetrying(Message):
    """An attempt of a task failed and it will run again: news for its submitter."""

    kind: Literal["task.retrying"] = "task.retrying"
    task_id: Identifier
    handler: HandlerName
    attempt: Annotated[int, Field(ge=1)]
    """The attempt that failed (1 = the first run)."""
    error: TaskFailure
    retry_in_s: NonNegative
    node_id: Identifier | None = None
    reply_to: Identifier


def cancelled_result(
    task: TaskSubmitted,
    *,
    attempts: int,
    node_id: str | None = None,
    demand: ResourceVector | None = None,
    logs: str | None = None,
) -> TaskResult:
    """The cancelled result of ``task``: one message id per task, as for every outcome."""
    return TaskResult(
        message_id=f"{task.task_id}.result",
        task_id=task.task_id,
        handler=task.handler,
        status="cancelled",
        node_id=node_id,
        attempts=attempts,
        demand=demand,
        complexity=task.complexity,
        data_size=task.data_size,
        reply_to=task.reply_to,
        submitted_at=task.submitted_at,
        logs=logs,
    )


def failed_result(
    task: TaskSubmitted,
    error_type: str,
    message: str,
    *,
    attempts: int,
    node_id: str | None = None,
    demand: ResourceVector | None = None,
    retryable: bool = False,
) -> TaskResult:
    """The failed result of ``task``, so that its caller never waits forever.

    Its message id is derived from the task id: whichever service reports the
    failure, consumers drop a second report as a repeat.
    """
    return TaskResult(
        message_id=f"{task.task_id}.result",
        task_id=task.task_id,
        handler=task.handler,
        status="failed",
        error=TaskFailure(error_type=error_type[:200], message=message[:4000], retryable=retryable),
        node_id=node_id,
        attempts=attempts,
        demand=demand,
        complexity=task.complexity,
        data_size=task.data_size,
        reply_to=task.reply_to,
        submitted_at=task.submitted_at,
    )


MAX_PROGRESS_MESSAGE = 500


class TaskProgress(Message):
    """How far a running task has got, as its handler said (latest wins).

    The executor sends at most about two a second per task, the latest
    report each time, to the submitter (``progress.<reply_to>``) and to the
    task record.
    """

    kind: Literal["task.progress"] = "task.progress"
    task_id: Identifier
    fraction: Fraction
    message: Annotated[str, StringConstraints(max_length=MAX_PROGRESS_MESSAGE)] = ""
    reply_to: Identifier
    node_id: Identifier | None = None
    at: Timestamp = Field(default_factory=now)


__all__ = [
    "MAX_LOG_BYTES",
    "MAX_PROGRESS_MESSAGE",
    "TaskFailure",
    "TaskOutcome",
    "TaskProgress",
    "TaskResult",
    "TaskRetrying",
    "TaskUsage",
    "cancelled_result",
    "failed_result",
]
