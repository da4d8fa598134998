"""The scheduler's handlers: submissions in, placements (or failures) out."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

import numpy as np

from boson_services.scheduler.end_aware import LiveEnds
from boson_shared.contract.messages import (
    ClusterSnapshot,
    Message,
    ResourceVector,
    TaskEvent,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
    failed_result,
    task_event,
)
from boson_shared.contract.topology import RK_PLACED, RK_RECORD_EVENT, Names
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import result_emit
from boson_shared.scheduling.demand import DemandModel
from boson_shared.scheduling.devices import GpuDevice, indices_of
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.placement_outcomes import NEVER
from boson_shared.scheduling.reservations import ReservationBook
from boson_shared.scheduling.scores import Strategy
from boson_shared.scheduling.table import NodeTable
from boson_shared.scheduling.tenants import UNKNOWN_TENANT, unknown_tenant_message


class SchedulerHandlers:
    """Placement state of one scheduler: the table, reservations and the model."""

    def __init__(
        self,
        *,
        names: Names,
        strategy: Strategy,
        demand_model: DemandModel,
        reservation_ttl_s: float,
        ingress_max_age_s: float,
        record: bool = False,
        record_linger_s: float = 0.0,
        tenants: Collection[str] | None = None,
        end_aware: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.names = names
        self.tenants = None if tenants is None else frozenset(tenants)
        """The tenants the tenants file declares: a task of any other is refused
        (None: every tenant is taken; the service always passes the file's)."""
        self.strategy = strategy
        self.demand_model = demand_model
        self.ingress_max_age_s = ingress_max_age_s
        self.record = record
        """Report submissions and placements to the task record."""
        self.record_route = Route(names.events_exchange, RK_RECORD_EVENT, linger_s=record_linger_s)
        self.wall_clock = wall_clock
        self.table = NodeTable()
        self.placer = Placer(self.table, strategy)
        self.ends = LiveEnds(self.placer, end_aware)
        """End-aware placement: expected ends from each handler's recent run times."""
        self.reservations = ReservationBook(reservation_ttl_s, clock)
        self.snapshot_seq: dict[str, int] = {}
        self.placed_total = 0

    # -- cluster state -----------------------------------------------------

    def on_snapshot(self, snapshot: ClusterSnapshot) -> None:
        last = self.snapshot_seq.get(snapshot.monitor_id, -1)
        if snapshot.seq <= last:
            return  # an older view than the one we hold
        self.snapshot_seq[snapshot.monitor_id] = snapshot.seq
        allocations = {}
        per_device: dict[str, list[int]] = {}
        for node in snapshot.nodes:
            # A node on probation runs what it has but is placed nothing new.
            takes_work = node.alive and not node.on_probation
            devices = [GpuDevice(g.model, g.memory_mib) for g in node.gpus] if node.gpus else None
            self.table.upsert(
                node.node_id, node.capacity.as_tuple(), alive=takes_work, devices=devices
            )
            allocations[node.node_id] = node.allocated.as_tuple()
            if node.gpus:
                per_device[node.node_id] = [g.allocated_milli for g in node.gpus]
        self.reservations.rebase(self.table, allocations, per_device)
        self.ends.on_snapshot(snapshot.nodes, self.reservations.held())

    def on_result(self, result: TaskResult) -> None:
        # The task is done: the next snapshot no longer counts it, nor should we.
        self.reservations.cancel(result.task_id, self.table)
        self.ends.observe(result)
        observe = getattr(self.demand_model, "observe", None)
        if observe is not None and result.usage is not None and result.status == "succeeded":
            observe(result.complexity, result.data_size, result.usage)

    async def handle_event(self, message: Message) -> Sequence[Emit]:
        if isinstance(message, ClusterSnapshot):
            self.on_snapshot(message)
        elif isinstance(message, TaskResult):
            self.on_result(message)
        return []

    # -- placement ---------------------------------------------------------

    async def on_submitted(self, task: TaskSubmitted) -> Sequence[Emit]:
        return self.place([task])

    async def on_submitted_batch(self, tasks: Sequence[TaskSubmitted]) -> Sequence[Emit]:
        return self.place(tasks)

    def place(self, tasks: Sequence[TaskSubmitted]) -> list[Emit]:
        """Place a batch in one call; stale submissions fail, the rest go on."""
        emits: list[Emit] = []
        now = self.wall_clock()
        admitted: list[TaskSubmitted] = []
        for task in tasks:
            refusal = self._refusal(task, now)
            if refusal is None:
                admitted.append(task)
            else:
                # Turned away: the record learns its inputs from this event
                # (a placed task's placement carries them).
                emits.extend(self._submitted(task))
                emits.append(result_emit(self.names, refusal))
        if not admitted:
            return emits
        self.reservations.expire(self.table)
        demands = [
            self.demand_model.estimate(task.complexity, task.data_size, task.requests)
            for task in admitted
        ]
        explanations = [
            self.placer.explain(d.as_tuple()) if task.explain else None
            for task, d in zip(admitted, demands, strict=True)
        ]
        matrix = np.array([d.as_tuple() for d in demands], dtype=np.float64)
        models = [task.requests.gpu_model if task.requests else None for task in admitted]
        batch = self.ends.place_batch(matrix, models, admitted, now)
        masks = batch.masks.tolist() if batch.masks is not None else [0] * len(admitted)
        for k, task in enumerate(admitted):
            index = int(batch.indices[k])
            demand = demands[k]
            if index == NEVER and len(self.table) > 0:
                emits.extend(self._submitted(task))
                emits.append(result_emit(self.names, self._never(task, demand)))
                continue
            node_id = batch.node_ids[k]
            if node_id is not None:
                self.reservations.reserve(task.task_id, node_id, matrix[k], devices=masks[k])
            self.placed_total += 1
            placed = TaskPlaced(
                message_id=f"{task.task_id}.placed",
                task=task,
                demand=demand,
                node_id=node_id,
                devices=indices_of(masks[k]),
                strategy=self.strategy,
                explanation=explanations[k],
            )
            emits.append(Emit(Route(self.names.work_exchange, RK_PLACED, mandatory=True), placed))
            if self.record:
                event = task_event(
                    task,
                    "placed" if node_id is not None else "pending",
                    "scheduler",
                    message_id=f"{placed.message_id}.ev",
                    inputs=True,
                    at=placed.placed_at,
                    node_id=node_id,
                    strategy=self.strategy,
                    demand=demand,
                    explanation=placed.explanation,
                )
                emits.append(self._record_emit(event))
        return emits

    def _refusal(self, task: TaskSubmitted, now: float) -> TaskResult | None:
        """The failed result of a task turned away before placement, or None."""
        age = now - task.submitted_at
        if age > self.ingress_max_age_s:
            return failed_result(
                task,
                "SubmissionTooOld",
                f"submitted {age:.0f}s ago, past the ingress limit of "
                f"{self.ingress_max_age_s:.0f}s",
                attempts=0,
            )
        if self.tenants is not None and task.tenant not in self.tenants:
            return failed_result(
                task,
                UNKNOWN_TENANT,
                unknown_tenant_message(task.tenant, self.tenants),
                attempts=0,
            )
        return None

    def _record_emit(self, event: TaskEvent) -> Emit:
        return Emit(self.record_route, event)

    def _submitted(self, task: TaskSubmitted) -> list[Emit]:
        """The record's ``submitted`` event of a task that will not be placed."""
        if not self.record:
            return []
        event = task_event(task, "submitted", "scheduler", message_id=f"{task.task_id}.sub")
        return [self._record_emit(event)]

    def _never(self, task: TaskSubmitted, demand: ResourceVector) -> TaskResult:
        largest = self.table.max_capacity().tolist()
        gpu_model = task.requests.gpu_model if task.requests else None
        model = f", gpu_model={gpu_model}" if gpu_model else ""
        return failed_result(
            task,
            "Unplaceable",
            f"demand (cpu={demand.cpu:g}, memory={demand.memory:g}, gpu={demand.gpu:g}"
            f"{model}) exceeds every node's total capacity (largest: cpu={largest[0]:g}, "
            f"memory={largest[1]:g}, gpu={largest[2]:g}; a GPU share needs one device, "
            "whole GPUs that many devices of one node)",
            attempts=0,
            demand=demand,
        )

    async def on_exhausted(
        self, task: TaskSubmitted, error: BaseException, attempts: int
    ) -> Sequence[Emit]:
        """A submission the scheduler could not handle: the client learns it failed."""
        result = failed_result(task, type(error).__name__, str(error), attempts=attempts)
        return [result_emit(self.names, result)]


__all__ = ["UNKNOWN_TENANT", "SchedulerHandlers", "failed_result"]
