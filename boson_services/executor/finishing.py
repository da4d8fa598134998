"""How a task ends here in a result: kept to send again, failed, or going round again.

:class:`Finishing` keeps the node's latest results (``replay_memory`` of
them): a task whose delivery comes back after it finished has its result
sent again under the same message id (every consumer drops the repeat),
or, no longer kept, runs again (see :meth:`Finishing._replay`). It also
answers the consumer's retry hooks: one failed result when the retries
are spent, a ``TaskRetrying`` notice each time the task goes round again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from boson_services.executor.capture import redact
from boson_services.executor.result_fields import earlier_runs, failure_text
from boson_services.executor.task_runs import TaskRuns
from boson_shared.contract.messages import (
    TaskAssigned,
    TaskFailure,
    TaskResult,
    TaskRetrying,
    failed_result,
)
from boson_shared.contract.topology import rk_retrying
from boson_shared.errors import PermanentTaskError
from boson_shared.runtime.consumer_spec import Emit, delivery_redelivered
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import result_emit

logger = logging.getLogger(__name__)


class Finishing(TaskRuns):
    """Results kept and sent again, failures and retries told (running:
    :class:`~boson_services.executor.task_runs.TaskRuns`)."""

    async def on_exhausted(
        self, assigned: TaskAssigned, error: BaseException, attempts: int
    ) -> Sequence[Emit]:
        """Out of retries (or a permanent error): report the failure, once."""
        task = assigned.task
        if task.task_id in self.completed and (replayed := self._replay(task.task_id)):
            return replayed
        self.completed.add(task.task_id)
        self.results["failed"] += 1
        result = failed_result(
            task,
            *failure_text(error),
            attempts=attempts + earlier_runs(assigned) + int(delivery_redelivered.get()),
            node_id=self.node_id,
            demand=assigned.demand,
            retryable=not isinstance(error, PermanentTaskError),
        )
        logs = getattr(error, "logs", None)
        if isinstance(logs, str):
            result = result.model_copy(update={"logs": redact(logs, self.secrets)})
        return [self._remember(result)]

    def _remember(self, result: TaskResult) -> Emit:
        emit = result_emit(self.names, result)
        self.replayable[result.task_id] = emit
        while len(self.replayable) > self.replay_memory:
            self.replayable.popitem(last=False)
        return emit

    def _replay(self, task_id: str) -> list[Emit]:
        """A task that finished here came back: its result may never have left.

        The delivery is redelivered when its ack was lost, and the ack is
        sent only after the result's confirm — so the result's publish may
        have failed with it. Sending the result again (same message id) is
        harmless: every consumer drops the repeat. A result no longer kept
        (more than ``replay_memory`` tasks finished since) is not known to
        have left, so nothing is returned and the caller runs the task again:
        it may run twice, but its result is never dropped.
        """
        emit = self.replayable.get(task_id)
        logger.info(
            "task %s already ran here; %s",
            task_id,
            "sending its result again"
            if emit
            else "its result is no longer kept: running it again",
        )
        return [emit] if emit is not None else []

    async def on_retry(
        self, assigned: TaskAssigned, error: BaseException, attempt: int, delay_ms: int
    ) -> Sequence[Emit]:
        """The task goes round again: tell its submitter as it happens."""
        task = assigned.task
        error_type, message = failure_text(error)
        news = TaskRetrying(
            task_id=task.task_id,
            handler=task.handler,
            attempt=attempt + earlier_runs(assigned) + int(delivery_redelivered.get()),
            error=TaskFailure(error_type=error_type[:200], message=message[:4000], retryable=True),
            retry_in_s=delay_ms / 1000,
            node_id=self.node_id,
            reply_to=task.reply_to,
        )
        return [Emit(Route(self.names.events_exchange, rk_retrying(task.reply_to)), news)]

    def max_attempts(self, assigned: TaskAssigned) -> int:
        return assigned.task.max_retries + 1


__all__ = ["Finishing"]
