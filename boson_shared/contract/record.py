"""The task record's messages (``task.event``, ``record.query``,
``record.reply``): the steps of a task's life the services report, what the
record holds of a task, and the queries that read it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import Field, StringConstraints

from boson_shared.contract.base import (
    Count,
    Digest,
    Fraction,
    HandlerName,
    Identifier,
    Message,
    Model,
    NonNegative,
    Priority,
    TenantName,
    Timestamp,
    now,
)
from boson_shared.contract.data import DataRef
from boson_shared.contract.resources import ResourceRequest, ResourceVector
from boson_shared.contract.results import (
    MAX_LOG_BYTES,
    MAX_PROGRESS_MESSAGE,
    TaskFailure,
    TaskUsage,
)
from boson_shared.contract.tasks import PlacementExplanation, TaskSubmitted
from boson_shared.contract.tenants_report import TenantSample

TaskStage: TypeAlias = Literal["submitted", "pending", "placed", "assigned", "started"]
"""The steps of a task's life before its outcome, in the order they happen."""

TaskState: TypeAlias = Literal[
    "submitted", "pending", "placed", "assigned", "started", "succeeded", "failed", "cancelled"
]
"""What the task record says of a task: its latest step, or its outcome."""

TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class TaskEvent(Message):
    """One step of a task's life, for the task record: never the task's data.

    The scheduler reports ``placed`` (``pending`` when no node fits yet), the
    balancer ``assigned``, the executor ``started``; the outcome is the
    :class:`TaskResult` itself. The placement carries the submission's
    inputs too (handler, submitter, tenant, priority, sizes, requests, limits): one event fewer
    per task. A task the scheduler turns away before placing it is reported
    ``submitted``, with the same inputs. Each service fills in only what it
    knows; every event carries the task's submission time, so a record row
    sorts right whichever event reaches the monitor first. A placement of a
    task submitted with ``explain`` carries the scheduler's explanation (the
    monitors keep the last few for the dashboard).
    """

    schema_version: ClassVar[int] = 4
    # v1: inputs only on "submitted"; v2: inputs without tenant, priority;
    # v3: no explanation
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    kind: Literal["task.event"] = "task.event"
    task_id: Identifier
    stage: TaskStage
    source: Identifier
    """The service that saw the step happen."""
    at: Timestamp = Field(default_factory=now)
    submitted_at: Timestamp
    handler: HandlerName | None = None
    submitter: Identifier | None = None
    complexity: NonNegative | None = None
    data_size: NonNegative | None = None
    input_bytes: Count | None = None
    """Size of the task's data (inline or by reference), not the data itself."""
    input_ref: Digest | None = None
    requests: ResourceRequest | None = None
    timeout_s: NonNegative | None = None
    max_retries: Count | None = None
    tenant: TenantName | None = None
    priority: Priority | None = None
    node_id: Identifier | None = None
    strategy: Annotated[str, StringConstraints(max_length=64)] | None = None
    demand: ResourceVector | None = None
    dispatch: Count | None = None
    attempt: Count | None = None
    explanation: PlacementExplanation | None = None


def task_event(
    task: TaskSubmitted,
    stage: TaskStage,
    source: str,
    *,
    message_id: str,
    inputs: bool = False,
    **fields: Any,
) -> TaskEvent:
    """The record event of ``task`` reaching ``stage``; it carries the task's
    inputs when ``inputs`` is set, and always for ``submitted``."""
    if stage == "submitted":
        fields.setdefault("at", task.submitted_at)
    if inputs or stage == "submitted":
        fields.update(
            handler=task.handler,
            submitter=task.reply_to,
            complexity=task.complexity,
            data_size=task.data_size,
            input_bytes=(
                len(task.data)
                if task.data is not None
                else (task.data_ref.size if task.data_ref is not None else 0)
            ),
            input_ref=task.data_ref.digest if task.data_ref is not None else None,
            requests=task.requests,
            timeout_s=task.timeout_s,
            max_retries=task.max_retries,
            tenant=task.tenant,
            priority=task.priority,
        )
    return TaskEvent(
        message_id=message_id,
        task_id=task.task_id,
        stage=stage,
        source=source,
        submitted_at=task.submitted_at,
        **fields,
    )


class TimelineEntry(Model):
    """One step in a task's recorded history."""

    stage: TaskState
    at: Timestamp
    node_id: Identifier | None = None
    source: Annotated[str, StringConstraints(max_length=64)] | None = None


class TaskRecord(Model):
    """What the record holds of one task (``Client.get``, ``boson task``)."""

    task_id: Identifier
    state: TaskState
    handler: HandlerName | None = None
    tenant: Annotated[str, StringConstraints(max_length=128)] | None = None
    priority: int | None = None
    submitter: Identifier | None = None
    complexity: NonNegative | None = None
    data_size: NonNegative | None = None
    input_bytes: Count | None = None
    input_ref: Digest | None = None
    node_id: Identifier | None = None
    strategy: Annotated[str, StringConstraints(max_length=64)] | None = None
    demand: ResourceVector | None = None
    attempts: Count = 0
    dispatches: Count = 0
    error: TaskFailure | None = None
    usage: TaskUsage | None = None
    output: Any = None
    output_ref: DataRef | None = None
    output_omitted: bool = False
    """The output was larger than the record keeps inline and had no reference."""
    submitted_at: Timestamp
    placed_at: Timestamp | None = None
    assigned_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    progress: Fraction | None = None
    """The handler's latest progress report (None: it made none)."""
    progress_message: Annotated[str, StringConstraints(max_length=MAX_PROGRESS_MESSAGE)] = ""
    progress_at: Timestamp | None = None
    logs: Annotated[str, StringConstraints(max_length=MAX_LOG_BYTES)] | None = None
    """What the handler printed or logged (its last 64 KiB; None: nothing captured)."""


RECORD_QUERY_MAX_LIMIT = 1000


class RecordQuery(Message):
    """Ask the monitors' task record: one task by id, or a filtered page of tasks;
    or (``subject="tenants"``) the tenants' samples over time, newest first,
    filtered by ``tenant``, ``since`` and ``until``.

    Answered with a :class:`RecordReply` on ``events/record.reply.<reply_to>``.
    """

    kind: Literal["record.query"] = "record.query"
    schema_version: ClassVar[int] = 4
    # v1: no cancelled state; v2: no tenant filter; v3: tasks only (no subject)
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    reply_to: Identifier
    subject: Literal["tasks", "tenants"] = "tasks"
    task_id: Identifier | None = None
    state: TaskState | None = None
    handler: HandlerName | None = None
    tenant: Annotated[str, StringConstraints(max_length=128)] | None = None
    node_id: Identifier | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    limit: Annotated[int, Field(ge=1, le=RECORD_QUERY_MAX_LIMIT)] = 50
    cursor: Annotated[str, StringConstraints(max_length=300)] | None = None
    """Where the previous page ended (its reply's ``next_cursor``)."""


RecordErrorCode: TypeAlias = Literal["not-found", "bad-query", "unavailable"]


class RecordReply(Message):
    """The record's answer to a :class:`RecordQuery`: records, or why not."""

    kind: Literal["record.reply"] = "record.reply"
    schema_version: ClassVar[int] = 4
    # v1: records without progress, logs; v2: without priority; v3: no tenant samples
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    query_id: Identifier
    records: tuple[TaskRecord, ...] = ()
    tenant_samples: Annotated[
        tuple[TenantSample, ...], Field(max_length=RECORD_QUERY_MAX_LIMIT)
    ] = ()
    next_cursor: Annotated[str, StringConstraints(max_length=300)] | None = None
    error: RecordErrorCode | None = None
    detail: Annotated[str, StringConstraints(max_length=4000)] = ""


__all__ = [
    "RECORD_QUERY_MAX_LIMIT",
    "TERMINAL_STATES",
    "RecordErrorCode",
    "RecordQuery",
    "RecordReply",
    "TaskEvent",
    "TaskRecord",
    "TaskStage",
    "TaskState",
    "TimelineEntry",
    "task_event",
]
