"""What an executor node holds: its tasks, slots and devices, the results it keeps.

:class:`NodeState` is the bottom layer of the executor's handlers: the
state every path reads, and what it tells of the node (its allocation for
the heartbeat, its held work for a takeover census). The layers above it:
:class:`~boson_services.executor.task_runs.TaskRuns` (a task's run),
:class:`~boson_services.executor.finishing.Finishing` (results kept,
failures and retries),
:class:`~boson_services.executor.cancelling.Cancelling` (cancels and
preemption) and :class:`~boson_services.executor.handlers.ExecutorHandlers`
(an assignment from arrival to result).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from boson_services.executor.gpus import GpuBook
from boson_services.executor.pool import TaskRunner
from boson_services.executor.start_report import Reporter
from boson_services.executor.steering import Cancels, ProgressCoalescer
from boson_shared.contract.messages import (
    DataRef,
    HeldTask,
    HeldWork,
    ResourceVector,
    TaskAssigned,
    TaskProgress,
)
from boson_shared.contract.topology import Names, rk_held_work, rk_progress
from boson_shared.handlers import HandlerSpec
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import Route

REPLAY_MEMORY = 1024
"""Results kept to send again if their task's delivery comes back; a finished
task whose result is no longer kept runs again (see
:meth:`~boson_services.executor.finishing.Finishing._replay`)."""

DataFetcher = Callable[[DataRef], Awaitable[bytes]]
DataUploader = Callable[[bytes], Awaitable[DataRef]]
Publisher = Callable[[Route, TaskProgress], Awaitable[None]]


class NodeState:
    """The node's tasks, slots, devices and kept results, and what they tell of it."""

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

    async def _publish_progress(self, progress: TaskProgress) -> None:
        if self._publish is not None:
            route = Route(self.names.events_exchange, rk_progress(progress.reply_to))
            await self._publish(route, progress)


__all__ = ["REPLAY_MEMORY", "DataFetcher", "DataUploader", "NodeState", "Publisher"]
