"""How lifecycle events fold into a task's record row: pure, no I/O.

Events may arrive in any order (two monitors, redeliveries), so a row's
state only ever moves forward — ``submitted`` < ``pending`` < ``placed`` <
``assigned`` < ``started`` < an outcome — and the first outcome is the only
one: once a row is ``succeeded``, ``failed`` or ``cancelled`` no event
changes it again.
Each event fills the columns it knows; the store applies an event only the
first time its message id is seen, so a repeat changes nothing.
"""

from __future__ import annotations

from typing import Any

import msgpack

from boson_shared.contract.messages import (
    TERMINAL_STATES,
    TaskEvent,
    TaskResult,
)

RecordEvent = TaskEvent | TaskResult
Row = dict[str, Any]

RANK: dict[str, int] = {
    "submitted": 0,
    "pending": 1,
    "placed": 2,
    "assigned": 3,
    "started": 4,
    "succeeded": 5,
    "failed": 5,
    "cancelled": 5,
}

_STAGE_TIME = {
    "pending": "placed_at",
    "placed": "placed_at",
    "assigned": "assigned_at",
    "started": "started_at",
}

_SUBMISSION_FIELDS = (
    "handler",
    "submitter",
    "tenant",
    "priority",
    "complexity",
    "data_size",
    "input_bytes",
    "input_ref",
    "timeout_s",
    "max_retries",
)


def event_id(event: RecordEvent) -> str:
    return event.message_id


def expand(event: RecordEvent) -> tuple[RecordEvent, ...]:
    """``event``, preceded by the ``started`` step its result carries, if any.

    The executor sends a short task's start with its result rather than on
    its own (``TaskResult.started_at``); the record takes it as the step the
    start event would have been, under an id of its own derived from the
    result's, so a repeated result repeats that step's id too.
    """
    if not isinstance(event, TaskResult) or event.started_at is None:
        return (event,)
    # Built from a validated result: nothing in it needs checking again.
    started = TaskEvent.model_construct(
        message_id=f"{event.message_id}.started",
        task_id=event.task_id,
        stage="started",
        source="executor",
        at=event.started_at,
        submitted_at=event.submitted_at,
        node_id=event.node_id,
    )
    return started, event


def event_row(event: RecordEvent) -> Row:
    """The event table's row for ``event`` (its timeline entry)."""
    if isinstance(event, TaskResult):
        return {
            "event_id": event.message_id,
            "task_id": event.task_id,
            "stage": event.status,
            "at": event.finished_at,
            "node_id": event.node_id,
            "source": "result",
        }
    return {
        "event_id": event.message_id,
        "task_id": event.task_id,
        "stage": event.stage,
        "at": event.at,
        "node_id": event.node_id,
        "source": event.source,
    }


def new_row(event: RecordEvent, *, now: float, ttl_s: float) -> Row:
    """The row a task's first event creates, before the event is folded in."""
    return {
        "task_id": event.task_id,
        "state": "submitted",
        "attempts": 0,
        "dispatches": 0,
        "output_omitted": False,
        "submitted_at": event.submitted_at,
        "recorded_at": now,
        "updated_at": now,
        "expires_at": event.submitted_at + ttl_s,
    }


def fold(row: Row, event: RecordEvent, *, now: float, ttl_s: float, inline_max_bytes: int) -> bool:
    """Fold ``event`` into ``row`` in place; whether the row changed.

    On a final row a late step only fills columns still empty (a submission
    reported after its outcome); a second outcome changes nothing.
    """
    if row["state"] in TERMINAL_STATES:
        if isinstance(event, TaskResult):
            return False
        late = dict(row, state="submitted")
        _fold_event(late, event)
        filled = {k: v for k, v in late.items() if row.get(k) is None and v is not None}
        if not filled:
            return False
        row.update(filled, updated_at=now)
        return True
    if isinstance(event, TaskResult):
        _fold_result(row, event, ttl_s=ttl_s, inline_max_bytes=inline_max_bytes)
    else:
        _fold_event(row, event)
    row["updated_at"] = now
    return True


def _fold_event(row: Row, event: TaskEvent) -> None:
    ahead = RANK[event.stage] >= RANK[row["state"]]
    # The task's inputs: on a placement, or on a ``submitted`` event.
    for name in _SUBMISSION_FIELDS:
        value = getattr(event, name)
        if value is not None:
            row[name] = value
    if event.requests is not None:
        row["requests"] = event.requests.model_dump(exclude_none=True)
    column = _STAGE_TIME.get(event.stage)
    if column is not None and (row.get(column) is None or event.at > row[column]):
        row[column] = event.at
    if event.strategy is not None:
        row["strategy"] = event.strategy
    if event.demand is not None:
        row["demand"] = event.demand.model_dump()
    if event.dispatch is not None:
        row["dispatches"] = max(row.get("dispatches") or 0, event.dispatch)
    if event.attempt is not None:
        row["attempts"] = max(row.get("attempts") or 0, event.attempt)
    if event.node_id is not None and (ahead or row.get("node_id") is None):
        row["node_id"] = event.node_id
    if ahead:
        row["state"] = event.stage


def _fold_result(row: Row, result: TaskResult, *, ttl_s: float, inline_max_bytes: int) -> None:
    row["state"] = result.status
    row["handler"] = row.get("handler") or result.handler
    row["submitter"] = row.get("submitter") or result.reply_to
    row["finished_at"] = result.finished_at
    row["expires_at"] = result.finished_at + ttl_s
    row["attempts"] = max(row.get("attempts") or 0, result.attempts)
    if result.node_id is not None:
        row["node_id"] = result.node_id
    if result.demand is not None:
        row["demand"] = result.demand.model_dump()
    if result.error is not None:
        # PostgreSQL text cannot hold NUL; a handler's message may.
        row["error_type"] = result.error.error_type.replace("\x00", "")
        row["error_message"] = result.error.message.replace("\x00", "")
        row["error_retryable"] = result.error.retryable
    if result.usage is not None:
        row["wall_s"] = result.usage.wall_s
        row["cpu_s"] = result.usage.cpu_s
        row["peak_memory_bytes"] = result.usage.peak_memory_bytes
    if result.logs is not None:
        row["logs"] = result.logs.replace("\x00", "")
    if result.output_ref is not None:
        row["output_ref"] = result.output_ref.digest
        row["output_bytes"] = result.output_ref.size
    if result.status == "succeeded" and result.output_ref is None:
        packed = msgpack.packb(result.output, use_bin_type=True)
        row["output_bytes"] = len(packed)
        if len(packed) <= inline_max_bytes:
            row["output"] = packed
        else:
            row["output_omitted"] = True


__all__ = [
    "RANK",
    "RecordEvent",
    "Row",
    "event_id",
    "event_row",
    "expand",
    "fold",
    "new_row",
]
