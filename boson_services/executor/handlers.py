"""The executor's handlers: a ``TaskAssigned`` in, a ``TaskResult`` (and alerts) out.

A :class:`CancelTask` stops a task held here (running or waiting for a slot)
and is remembered, so a cancelled task that arrives later never starts;
either way its submitter gets one ``cancelled`` result. A ``preempted`` one
for this node stops the task too, but hands it back to the balancer (a
``TaskPlaced`` on its placed queue) to run again later: no result, and the
run counts as no attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgpack
import numpy as np

from boson_services.executor.capture import TailBuffer, redact
from boson_services.executor.gpus import ENV_BUDGET, Binding, GpuBook
from boson_services.executor.pool import WORKER_DIED, HandlerFailedError, RunOutcome, TaskRunner
from boson_services.executor.start_report import Reporter, StartReport
from boson_services.executor.steering import Cancels, ProgressCoalescer, Running
from boson_shared.contract.messages import (
    Alert,
    CancelTask,
    CancelVerdict,
    DataRef,
    HeldTask,
    HeldWork,
    ResourceVector,
    TaskAssigned,
    TaskFailure,
    TaskPlaced,
    TaskProgress,
    TaskResult,
    TaskRetrying,
    TaskSubmitted,
    TaskUsage,
    cancelled_result,
    failed_result,
    task_event,
)
from boson_shared.contract.topology import (
    RK_PARKED,
    Names,
    rk_alert,
    rk_held_work,
    rk_progress,
    rk_retrying,
)
from boson_shared.errors import (
    InvalidTaskInputError,
    InvalidTaskOutputError,
    PermanentTaskError,
    UnknownHandlerError,
)
from boson_shared.handlers import HandlerSpec, TaskInput
from boson_shared.runtime.cancels import cancel_answers
from boson_shared.runtime.consumer import Emit, delivery_attempt, delivery_redelivered
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import result_emit
from boson_shared.task_control import TaskControl

logger = logging.getLogger(__name__)

REPLAY_MEMORY = 1024
"""Results kept to send again if their task's delivery comes back; a finished
task whose result is no longer kept runs again (see ``_replay``)."""

DataFetcher = Callable[[DataRef], Awaitable[bytes]]
DataUploader = Callable[[bytes], Awaitable[DataRef]]
Publisher = Callable[[Route, TaskProgress], Awaitable[None]]


class HandlerRaisedError(PermanentTaskError):
    """A handler's own exception, not retried: its submitter did not ask for retries."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


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


class ExecutorHandlers:
    """Runs assigned tasks on this node; a repeat is answered under the same result id."""

    def __init__(
        self,
        *,
        node_id: str,
        slots: int,
        registry: dict[str, HandlerSpec],
        runner: TaskRunner,
        names: Names,
        max_inline_result_bytes: int,
        completed_memory: int,
        fetch: DataFetcher | None = None,
        upload: DataUploader | None = None,
        replay_memory: int = REPLAY_MEMORY,
        report: Reporter | None = None,
        start_hold_s: float = 0.0,
        gpus: GpuBook | None = None,
        publish: Publisher | None = None,
        secrets: tuple[str, ...] = (),
        on_freed: Callable[[], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.registry = registry
        self.runner = runner
        self.names = names
        self.max_inline_result_bytes = max_inline_result_bytes
        self.fetch = fetch
        self.upload = upload
        self.report = report
        """Publishes lifecycle events to the task record (None: no record)."""
        self.start_hold_s = start_hold_s
        """How long a start waits before it is sent: a task done sooner has its
        result carry the start instead (:mod:`boson_services.executor.start_report`)."""
        self.gpus = gpus if gpus is not None else GpuBook([])
        """This node's GPU devices and which task holds which."""
        self.slots = asyncio.Semaphore(slots)
        self.active: dict[str, TaskAssigned] = {}
        """Tasks held by this node (running or waiting for a slot)."""
        self.running = 0
        self.completed = SeenIds(completed_memory)
        self.results = {"succeeded": 0, "failed": 0, "cancelled": 0}
        self.cancels = Cancels(completed_memory)
        self.secrets = secrets
        """Removed from captured output before it leaves the node."""
        self.on_freed = on_freed
        """Called when a cancel has freed a slot (the service heartbeats at once)."""
        self.progress = ProgressCoalescer(self._publish_progress, node_id=node_id)
        self._publish = publish
        self.replay_memory = replay_memory
        self.replayable: OrderedDict[str, Emit] = OrderedDict()
        """The latest results, to send again when their assignment comes back."""

    def allocated(self) -> ResourceVector:
        cpu = memory = gpu = 0.0
        for demand in (assigned.demand for assigned in self.active.values()):
            cpu += demand.cpu
            memory += demand.memory
            gpu += demand.gpu
        if self.gpus.gpus:  # exact: the devices' books, in milli-units
            gpu = self.gpus.allocated()
        return ResourceVector(cpu=cpu, memory=memory, gpu=gpu)

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

    async def _hold_slot_and_run(
        self,
        spec: HandlerSpec,
        assigned: TaskAssigned,
        binding: Binding,
        control: TaskControl,
        output: TailBuffer,
        announced: list[StartReport],
    ) -> RunOutcome:
        """Wait for a slot and run the task (an asyncio task of its own: a cancel stops it)."""
        async with self.slots:
            self.running += 1
            # The start is announced (or withdrawn, the result carrying it)
            # while the task runs, and its confirm awaited after the slot is
            # free: a slot never waits on the broker.
            start = self._announce_start(assigned)
            if start is not None:
                announced.append(start)
            try:
                return await self._run(spec, assigned.task, binding, control, output)
            finally:
                self.running -= 1

    def held_work(self, request_id: str, reply_to: str, *, complete: bool) -> Emit:
        """What this node holds, for the balancer that asks (it took over
        admission; see :mod:`boson_services.executor.census`)."""
        tasks = tuple(
            HeldTask(
                task_id=task_id,
                tenant=assigned.task.tenant,
                priority=assigned.task.priority,
                demand=assigned.demand,
            )
            for task_id, assigned in self.active.items()
        )
        answer = HeldWork(
            node_id=self.node_id, request_id=request_id, tasks=tasks, complete=complete
        )
        return Emit(Route(self.names.events_exchange, rk_held_work(reply_to)), answer)

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

    async def _publish_progress(self, progress: TaskProgress) -> None:
        if self._publish is not None:
            route = Route(self.names.events_exchange, rk_progress(progress.reply_to))
            await self._publish(route, progress)

    def _announce_start(self, assigned: TaskAssigned) -> StartReport | None:
        if self.report is None:
            return None
        attempt = delivery_attempt.get()
        event = task_event(
            assigned.task,
            "started",
            "executor",
            message_id=f"{assigned.task.task_id}.s{assigned.dispatch}.{attempt}",
            node_id=self.node_id,
            dispatch=assigned.dispatch,
            attempt=attempt,
        )
        return StartReport(event, self.report, self.start_hold_s)

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

    async def _run(
        self,
        spec: HandlerSpec,
        task: TaskSubmitted,
        binding: Binding,
        control: TaskControl,
        output: TailBuffer,
    ) -> RunOutcome:
        data = task.data
        if task.data_ref is not None:
            if self.fetch is None:
                raise InvalidTaskInputError("task data is a reference but no data plane is set up")
            data = await self.fetch(task.data_ref)
        task_input = TaskInput(
            task_id=task.task_id,
            data=data,
            params=task.params,
            attempt=delivery_attempt.get(),
            gpu_devices=binding.device_ids,
            gpu_memory_budget_mib=binding.memory_budget_mib,
            control=control,
        )
        # On a node with GPUs every worker is told its devices (none for a
        # task without GPU); elsewhere the environment is left alone.
        env: dict[str, str | None] | None = None
        if self.gpus.gpus:
            env = {**binding.env(), **({} if binding.memory_budget_mib else {ENV_BUDGET: None})}
        try:
            return await self.runner.run(spec, task_input, task.timeout_s, output, env)
        except HandlerFailedError as error:
            # Retrying mends a flaky upstream (the handler raises Retry) or a
            # worker that died, not a bug: the task fails at once unless its
            # submitter asked for retries.
            if error.asked_retry or error.error_type == WORKER_DIED or task.retry_errors:
                raise
            raise HandlerRaisedError(error.error_type, error.message) from error

    def _check_output(self, output: Any) -> bytes:
        try:
            packed: bytes = msgpack.packb(output)
        except (TypeError, ValueError, OverflowError) as error:
            raise InvalidTaskOutputError(f"result is not serialisable: {error}") from error
        if len(packed) > self.max_inline_result_bytes and self.upload is None:
            raise InvalidTaskOutputError(
                f"result of {len(packed)} bytes exceeds the inline limit "
                f"of {self.max_inline_result_bytes}"
            )
        return packed


async def _settled(future: asyncio.Future[None] | None) -> None:
    """Wait for a side publish whose task failed anyway; its own error is moot."""
    if future is None:
        return
    try:
        await future
    except Exception as error:
        logger.debug("start event not published: %s", error)


__all__ = [
    "DataFetcher",
    "DataUploader",
    "ExecutorHandlers",
    "HandlerRaisedError",
    "attempt_of",
    "failure_text",
    "to_wire",
]
