"""What a task's result says of its run: which attempt it was, how its failure
reads, its output as plain values.

Free functions the executor's handlers call as they build a result or a
retry notice (:mod:`~boson_services.executor.handlers`,
:mod:`~boson_services.executor.finishing`,
:mod:`~boson_services.executor.cancelling`); they hold no state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from boson_shared.contract.messages import TaskAssigned
from boson_shared.runtime.consumer_spec import delivery_attempt, delivery_redelivered


def failure_text(error: BaseException) -> tuple[str, str]:
    """The error type and message a submitter reads (the type never repeated in the text)."""
    error_type = getattr(error, "error_type", None) or type(error).__name__
    message = getattr(error, "message", None)
    return str(error_type), str(message) if isinstance(message, str) else str(error)


def attempt_of(assigned: TaskAssigned) -> int:
    """Which run of its task this is: retries, re-dispatches after a node died,
    redeliveries (runs stopped by a preemption do not count)."""
    return earlier_runs(assigned) + delivery_attempt.get() + int(delivery_redelivered.get())


def earlier_runs(assigned: TaskAssigned) -> int:
    """Runs of the task before this dispatch that count as attempts."""
    return max(0, assigned.dispatch - 1 - assigned.preempted)


def to_wire(value: Any) -> Any:
    """Turn numpy values into plain Python so that msgpack can carry them."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


__all__ = ["attempt_of", "earlier_runs", "failure_text", "to_wire"]
