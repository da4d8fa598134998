"""Cancels and preemption on an executor: held tasks stopped, or handed back.

A :class:`CancelTask` stops a task held here (running or waiting for a slot)
and is remembered, so a cancelled task that arrives later never starts;
either way its submitter gets one ``cancelled`` result. A ``preempted`` one
for this node stops the task too, but hands it back to the balancer (a
``TaskPlaced`` on its placed queue) to run again later: no result, and the
run counts as no attempt.

:class:`Cancelling` answers the cancel and builds what a stopped task comes
to; the stop itself is :class:`~boson_services.executor.steering.Cancels`'s,
and the task's handler
(:meth:`~boson_services.executor.handlers.ExecutorHandlers.on_assigned`)
returns it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from boson_services.executor.capture import redact
from boson_services.executor.finishing import Finishing
from boson_services.executor.result_fields import attempt_of
from boson_shared.contract.messages import (
    CancelTask,
    CancelVerdict,
    TaskAssigned,
    TaskPlaced,
    cancelled_result,
)
from boson_shared.contract.topology import RK_PARKED
from boson_shared.runtime.cancels import cancel_answers
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route

logger = logging.getLogger(__name__)


class Cancelling(Finishing):
    """Cancels answered, cancelled and preempted tasks' outcomes (results:
    :class:`~boson_services.executor.finishing.Finishing`)."""

    async def on_cancel(self, cancel: CancelTask) -> Sequence[Emit]:
        """Stop the named tasks held here; remember every id; answer for those held.

        A preemption concerns only the node it names and is not answered:
        each task it names is handed back to the balancer (see the module
        docstring)."""
        if cancel.reason == "preempted":
            if cancel.node_id == self.node_id:
                for task_id in cancel.task_ids:
                    if task_id not in self.completed:
                        self.cancels.preempt(task_id)
            return []
        return cancel_answers(
            cancel, self._cancel_one, self.names, source="executor", node_id=self.node_id
        )

    def _cancel_one(self, task_id: str) -> CancelVerdict | None:
        if task_id in self.completed:
            # Finished here: cancelled before (it stays so), or its outcome stands.
            return "cancelled" if task_id in self.cancels else "finished"
        stopped = self.cancels.stop(task_id)
        if stopped is False:
            return "finished"  # it returned just now: its result is on its way
        self.cancels.remember(task_id)
        return "cancelled" if stopped else None

    def _cancelled(self, assigned: TaskAssigned, logs: str | None, *, freed: bool = False) -> Emit:
        task = assigned.task
        self.completed.add(task.task_id)
        self.cancels.remember(task.task_id)
        self.results["cancelled"] += 1
        logger.info("task %s cancelled", task.task_id)
        if freed and self.on_freed is not None:
            self.on_freed()
        result = cancelled_result(
            task,
            attempts=attempt_of(assigned),
            node_id=self.node_id,
            demand=assigned.demand,
            logs=redact(logs, self.secrets),
        )
        return self._remember(result)

    def _hand_back(self, assigned: TaskAssigned, *, freed: bool = False) -> Emit:
        """Return a preempted task to the balancer's placed queue, to run again."""
        task = assigned.task
        self.cancels.preempted += 1
        logger.info("task %s preempted; handed back to the balancer", task.task_id)
        if freed and self.on_freed is not None:
            self.on_freed()
        placed = TaskPlaced(
            message_id=f"{task.task_id}.p{assigned.dispatch}",
            task=task,
            demand=assigned.demand,
            node_id=None,
            strategy="preempted",
            dispatched=assigned.dispatch,
            preempted=assigned.preempted + 1,
        )
        return Emit(Route(self.names.work_exchange, RK_PARKED, mandatory=True), placed)


__all__ = ["Cancelling"]
