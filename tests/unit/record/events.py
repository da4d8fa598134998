"""Lifecycle events of made-up tasks, as the services would report them."""

from __future__ import annotations

from typing import Literal

from boson_shared.contract.messages import (
    ResourceVector,
    TaskEvent,
    TaskResult,
    TaskSubmitted,
    TaskUsage,
    failed_result,
    task_event,
)
from boson_shared.record.merge import RecordEvent

SUCCEEDED_TIMELINE = ("submitted", "placed", "assigned", "started", "succeeded")
"""The stages of a :func:`lifecycle` that succeeds, as its record's timeline lists them."""


def lifecycle(
    task_id: str,
    *,
    outcome: Literal["succeeded", "failed"] = "succeeded",
    node_id: str = "n1",
    submitted_at: float = 1_000.0,
    handler: str = "echo",
    output: object = None,
    separate_submission: bool = False,
    tenant: str = "default",
    priority: int = 0,
    start_with_result: bool = False,
) -> list[RecordEvent]:
    """placed (with the task's inputs), assigned, started and the outcome of
    one task, as the services report them; with ``separate_submission``, as
    schema-1 schedulers did: a ``submitted`` event first, placed without inputs;
    with ``start_with_result``, the start carried by the result (a short task)."""
    task = TaskSubmitted(
        task_id=task_id,
        handler=handler,
        reply_to="c1",
        data=b"abc",
        complexity=2.0,
        submitted_at=submitted_at,
        tenant=tenant,
        priority=priority,
    )
    demand = ResourceVector(cpu=1.0, memory=2.0)
    steps: list[TaskEvent] = [
        task_event(
            task,
            "placed",
            "scheduler",
            message_id=f"{task_id}.placed.ev",
            inputs=not separate_submission,
            at=submitted_at + 1,
            node_id=node_id,
            strategy="binpack",
            demand=demand,
        ),
        task_event(
            task,
            "assigned",
            "balancer",
            message_id=f"{task_id}.a1.ev",
            at=submitted_at + 2,
            node_id=node_id,
            dispatch=1,
        ),
        task_event(
            task,
            "started",
            "executor",
            message_id=f"{task_id}.s1.1.ev",
            at=submitted_at + 3,
            node_id=node_id,
            attempt=1,
        ),
    ]
    if start_with_result:
        steps.pop()
    if separate_submission:
        submitted = task_event(
            task, "submitted", "scheduler", message_id=f"{task_id}.ev.sub", at=submitted_at
        )
        steps.insert(0, submitted)
    result: TaskResult
    if outcome == "succeeded":
        result = TaskResult(
            message_id=f"{task_id}.result",
            task_id=task_id,
            handler=handler,
            status="succeeded",
            output=output if output is not None else {"task": task_id},
            node_id=node_id,
            usage=TaskUsage(wall_s=0.5, cpu_s=0.4, peak_memory_bytes=1000),
            reply_to="c1",
            submitted_at=submitted_at,
            finished_at=submitted_at + 4,
        )
    else:
        result = failed_result(task, "ValueError", "bad input", attempts=2, node_id=node_id)
        result = result.model_copy(update={"finished_at": submitted_at + 4})
    if start_with_result:
        result = result.model_copy(update={"started_at": submitted_at + 3})
    return [*steps, result]


__all__ = ["lifecycle"]
