"""Handlers for the task-record tests: a result to check, or a failure on demand."""

from __future__ import annotations

from boson_shared.errors import InvalidTaskInputError
from boson_shared.handlers import TaskInput, handler


@handler("square", mode="inline")
def square(task: TaskInput) -> dict[str, int]:
    """``{"square": x * x}``; a task with ``fail`` set fails at once (never retried)."""
    if task.params.get("fail"):
        raise InvalidTaskInputError(f"task {task.task_id} was asked to fail")
    x = int(task.params["x"])
    return {"x": x, "square": x * x}


__all__ = ["square"]
