"""Cancels at the balancer: held tasks released, every id remembered.

A :class:`CancelTask` releases the tasks it names that are held here (their
handlers report them ``cancelled``) and is remembered, bounded, so a
cancelled task that arrives later — still at the scheduler or in the placed
queue — is dropped as cancelled instead of dispatched. A task already
dispatched is its executor's to stop. A ``preempted`` cancel is the
balancer's own command to an executor and changes nothing here.
"""

from __future__ import annotations

import logging

from boson_services.balancer.handler_state import HandlerState
from boson_shared.contract.messages import (
    CancelTask,
    CancelVerdict,
    ResourceVector,
    TaskSubmitted,
    cancelled_result,
)
from boson_shared.runtime.cancels import cancel_answers
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.results import result_emit

logger = logging.getLogger(__name__)


class Cancelling(HandlerState):
    """Cancels answered, held tasks released, a cancelled task's result (state:
    :class:`~boson_services.balancer.handler_state.HandlerState`)."""

    def on_cancel(self, cancel: CancelTask) -> list[Emit]:
        """Release the named tasks held here; remember every id; answer for those it knew."""
        if cancel.reason == "preempted":
            return []  # an executor's to act on; the task comes back to us
        return cancel_answers(cancel, self._cancel_one, self.names, source="balancer")

    def _cancel_one(self, task_id: str) -> CancelVerdict | None:
        known = task_id in self.cancelled
        if task_id in self.finished:
            return "cancelled" if known else "finished"
        if not known:
            self.cancelled.add(task_id)
        if self.dispatcher.cancel(task_id):
            return "cancelled"
        if self.gate is not None and self.gate.cancel(task_id):
            return "cancelled"
        # Dispatched (its executor answers) or not here yet (it will be dropped).
        return None

    def _cancelled(self, task: TaskSubmitted, demand: ResourceVector) -> Emit:
        self.cancelled_total += 1
        logger.info("task %s cancelled before dispatch", task.task_id)
        return result_emit(self.names, cancelled_result(task, attempts=0, demand=demand))


__all__ = ["Cancelling"]
