"""The executor's handlers: a ``TaskAssigned`` in, a ``TaskResult`` (and alerts) out.

:class:`ExecutorHandlers` takes an assignment from its arrival to its
result: a repeat of a task held here is dropped, one that finished here
has its kept result sent again, one cancelled or preempted before it
arrived never starts; any other holds its GPU devices, runs, and its
output goes out inline or through the transfer service. It is built in
layers:
:mod:`~boson_services.executor.node_state` (what the node holds),
:mod:`~boson_services.executor.task_runs` (a task's run),
:mod:`~boson_services.executor.finishing` (results kept and sent again,
failures and retries) and :mod:`~boson_services.executor.cancelling`
(cancels and preemption); :mod:`~boson_services.executor.result_fields`
has the free functions a result is built with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from boson_services.executor.cancelling import Cancelling
from boson_services.executor.capture import TailBuffer, redact
from boson_services.executor.pool import HandlerFailedError
from boson_services.executor.result_fields import attempt_of, to_wire
from boson_services.executor.start_report import StartReport
from boson_services.executor.steering import Running
from boson_shared.contract.messages import Alert, DataRef, TaskAssigned, TaskResult, TaskUsage
from boson_shared.contract.topology import rk_alert
from boson_shared.errors import InvalidTaskInputError, UnknownHandlerError
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route

logger = logging.getLogger(__name__)


class ExecutorHandlers(Cancelling):
    """Runs assigned tasks on this node; a repeat is answered under the same result id."""

    async def on_assigned(self, assigned: TaskAssigned) -> Sequence[Emit]:
        task = assigned.task
        if task.task_id in self.active:
            # Re-dispatched or redelivered while we hold it: never twice.
            logger.info("task %s already held here; dropping the repeat", task.task_id)
            return []
        if task.task_id in self.completed and (replayed := self._replay(task.task_id)):
            return replayed
        if self.cancels.was_preempted(task.task_id):
            return [self._hand_back(assigned)]  # preempted before it reached us
        if task.task_id in self.cancels:
            # Cancelled before it reached us: it never starts.
            self.cancels.dropped += 1
            return [self._cancelled(assigned, None)]
        spec = self.registry.get(task.handler)
        if spec is None:
            raise UnknownHandlerError(f"no handler named {task.handler!r} on {self.node_id}")
        try:
            binding = self.gpus.hold(task.task_id, assigned.demand.gpu, assigned.devices)
        except ValueError as error:
            raise InvalidTaskInputError(f"GPU devices: {error}") from error
        self.active[task.task_id] = assigned
        control = self.progress.control_for(task)
        announced: list[StartReport] = []
        printed = TailBuffer()
        run = asyncio.ensure_future(
            self._hold_slot_and_run(spec, assigned, binding, control, printed, announced)
        )
        self.cancels.running[task.task_id] = Running(control, run)
        try:
            outcome = await run
        except asyncio.CancelledError:
            await _settled(announced[0].send() if announced else None)
            current = asyncio.current_task()
            if control.cancelled and (current is None or current.cancelling() == 0):
                if self.cancels.was_preempted(task.task_id):
                    return [self._hand_back(assigned, freed=True)]
                # What a thread or coroutine handler wrote until then is kept.
                return [self._cancelled(assigned, printed.text(), freed=True)]
            raise
        except HandlerFailedError as error:
            await _settled(announced[0].send() if announced else None)
            error.logs = redact(error.logs, self.secrets)
            raise
        except BaseException:
            await _settled(announced[0].send() if announced else None)
            raise
        finally:
            # Every way out — done, failed, timed out, cancelled, worker
            # killed — passes here: the devices are free again.
            del self.active[task.task_id]
            self.gpus.release(task.task_id)
            del self.cancels.running[task.task_id]
            self.progress.finish(task.task_id)
        started_at: float | None = None
        if announced:
            started_at = announced[0].withdraw()
            sent = announced[0].send() if started_at is None else None
            if sent is not None:
                # The start left on its own: the result never overtakes it.
                await sent
        await self.progress.settle(task.task_id)
        output = to_wire(outcome.output.value)
        packed = self._check_output(output)
        output_ref: DataRef | None = None
        if len(packed) > self.max_inline_result_bytes:
            # Too large to travel inline: through the transfer service instead.
            output_ref = await self.upload(packed) if self.upload is not None else None
            output = None
        self.completed.add(task.task_id)
        self.results["succeeded"] += 1
        usage = outcome.usage
        result = TaskResult(
            message_id=f"{task.task_id}.result",
            task_id=task.task_id,
            handler=task.handler,
            status="succeeded",
            output=output,
            output_ref=output_ref,
            node_id=self.node_id,
            attempts=attempt_of(assigned),
            usage=TaskUsage(
                wall_s=usage.wall_s,
                cpu_s=usage.cpu_s,
                peak_memory_bytes=max(0, usage.peak_memory_bytes),
            ),
            demand=assigned.demand,
            complexity=task.complexity,
            data_size=task.data_size,
            reply_to=task.reply_to,
            submitted_at=task.submitted_at,
            logs=redact(outcome.logs, self.secrets),
            started_at=started_at,
        )
        emits = [self._remember(result)]
        for raised in outcome.output.alerts:
            alert = Alert(
                reason="anomaly",
                severity=raised.severity,
                detail=raised.detail[:4000],
                value=raised.value,
                node_id=self.node_id,
                task_id=task.task_id,
            )
            emits.append(Emit(Route(self.names.events_exchange, rk_alert(alert.reason)), alert))
        return emits


async def _settled(future: asyncio.Future[None] | None) -> None:
    """Wait for a side publish whose task failed anyway; its own error is moot."""
    if future is None:
        return
    try:
        await future
    except Exception as error:
        logger.debug("start event not published: %s", error)


__all__ = ["ExecutorHandlers"]
