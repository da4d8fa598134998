"""A handler that always fails, to prove a poison task ends as a failed result."""

from __future__ import annotations

from boson_shared.handlers import TaskInput, handler


@handler("poison", mode="inline")
def poison(task: TaskInput) -> None:
    raise RuntimeError(f"poison task {task.task_id} always fails")
