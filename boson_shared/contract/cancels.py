"""Stopping tasks once sent (``task.cancel``, ``task.cancel.answer``): the
broadcast command, which also carries the balancer's preemptions, and a
holder's answer.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, TypeAlias

from pydantic import Field, model_validator

from boson_shared.contract.base import Identifier, Message, Timestamp, now

MAX_CANCEL_IDS = 1000
"""Task ids one :class:`CancelTask` may name."""


CancelReason: TypeAlias = Literal["requested", "preempted"]


class CancelTask(Message):
    """Stop these tasks: a queued one never starts, a running one is stopped.

    A command broadcast on the events exchange to every balancer and
    executor, never through the database. Whoever holds a task answers with
    a :class:`CancelAnswer` and reports its ``cancelled`` :class:`TaskResult`;
    the others remember the ids (bounded), so a task that reaches them later
    is dropped as cancelled instead of started.
    """

    kind: Literal["task.cancel"] = "task.cancel"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: no reason, no node_id
    task_ids: Annotated[tuple[Identifier, ...], Field(min_length=1, max_length=MAX_CANCEL_IDS)]
    reply_to: Identifier
    """Client id: answers go to ``cancel.answer.<reply_to>``."""
    requested_at: Timestamp = Field(default_factory=now)
    reason: CancelReason = "requested"
    """``preempted``: the balancer takes borrowed capacity back. The executor
    of ``node_id`` stops the task and hands it back to the balancer, which
    runs it again; nobody answers, remembers the ids, or reports a result."""
    node_id: Identifier | None = None
    """For a preemption: the node the task was dispatched to (others ignore it)."""

    @model_validator(mode="after")
    def _preemption_names_its_node(self) -> CancelTask:
        if (self.reason == "preempted") != (self.node_id is not None):
            raise ValueError("a preemption names the node it stops tasks on, a cancel does not")
        return self


CancelVerdict: TypeAlias = Literal["cancelled", "finished"]


class CancelAnswer(Message):
    """A holder's answer to a :class:`CancelTask` for one task.

    ``cancelled``: the task was stopped (or dropped before it started) here,
    and its ``cancelled`` result is on its way to the submitter. ``finished``:
    it had already finished here (succeeded or failed); nothing changed.
    Services that never held the task stay silent.
    """

    kind: Literal["task.cancel.answer"] = "task.cancel.answer"
    request_id: Identifier
    """The :class:`CancelTask`'s message id."""
    task_id: Identifier
    verdict: CancelVerdict
    source: Identifier
    """The service that answered (``balancer`` or ``executor``)."""
    node_id: Identifier | None = None


__all__ = [
    "MAX_CANCEL_IDS",
    "CancelAnswer",
    "CancelReason",
    "CancelTask",
    "CancelVerdict",
]
