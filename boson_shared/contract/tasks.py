"""A task on its way to a node (``task.submitted``, ``task.placed``,
``task.assigned``): the submission as the client publishes it, the
scheduler's placement (and why, for ``explain``) and the balancer's dispatch.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from boson_shared.contract.base import (
    DEFAULT_TENANT,
    Count,
    HandlerName,
    Identifier,
    Message,
    Model,
    NonNegative,
    Priority,
    TenantName,
    Timestamp,
    now,
)
from boson_shared.contract.data import DataRef
from boson_shared.contract.resources import DeviceIndex, ResourceRequest, ResourceVector


class TaskSubmitted(Message):
    """A user's task, as the client publishes it (and as it travels on)."""

    kind: Literal["task.submitted"] = "task.submitted"
    schema_version: ClassVar[int] = 4
    # v1: no retry_errors; v2: no gpu_model in its requests; v3: no tenant, priority
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    task_id: Identifier
    handler: HandlerName
    params: dict[str, Any] = Field(default_factory=dict)
    data: bytes | None = None
    data_ref: DataRef | None = None
    complexity: NonNegative = Field(
        default=0.0, description="Demand units the task's work costs, before its data."
    )
    data_size: NonNegative = Field(
        default=0.0, description="Size of the task's input in KiB (1024 bytes)."
    )
    requests: ResourceRequest | None = None
    timeout_s: Annotated[float, Field(gt=0, le=7 * 24 * 3600, allow_inf_nan=False)] = Field(
        default=300.0, description="Seconds the handler may run before the attempt fails."
    )
    max_retries: Annotated[int, Field(ge=0, le=25)] = 3
    """Retries of what retrying can fix: a node that died, a timeout, a transient
    error, a handler that raised :class:`~boson_shared.handlers.Retry`."""
    retry_errors: bool = False
    """Retry a handler's own exceptions too (the user asked for retries);
    otherwise one fails the task at once."""
    reply_to: Identifier = Field(
        description="Client id: the result is published with routing key result.<reply_to>."
    )
    submitted_at: Timestamp = Field(default_factory=now)
    explain: bool = False
    tenant: TenantName = DEFAULT_TENANT
    """The team or account the task's work counts against (docs/scheduling.md#tenants)."""
    priority: Priority = 0
    """Within its tenant, a higher priority is admitted first."""

    @model_validator(mode="after")
    def _one_data_source(self) -> TaskSubmitted:
        if self.data is not None and self.data_ref is not None:
            raise ValueError("a task carries inline data or a data_ref, not both")
        return self


class NodeScore(Model):
    """One node's view of one placement decision (for ``explain``)."""

    node_id: Identifier
    alive: bool
    fits: bool
    score: float | None
    utilisation_before: NonNegative
    utilisation_after: NonNegative | None


class PlacementExplanation(Model):
    """Why a task went where it went: every node's fit and score."""

    strategy: str
    nodes: tuple[NodeScore, ...]


class TaskPlaced(Message):
    """The scheduler's decision: a node, or ``node_id=None`` for pending."""

    kind: Literal["task.placed"] = "task.placed"
    schema_version: ClassVar[int] = 4
    # v1: its task was v1; v2: no devices; v3: its task had no tenant, priority
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    task: TaskSubmitted
    demand: ResourceVector
    node_id: Identifier | None
    devices: tuple[DeviceIndex, ...] = ()
    """The node's GPU devices chosen for the task (none without a GPU part)."""
    strategy: str
    placed_at: Timestamp = Field(default_factory=now)
    explanation: PlacementExplanation | None = None
    dispatched: Count = 0
    """Times the task was dispatched before this placement (a preempted task's
    runs so far): its next assignment is dispatch ``dispatched + 1``."""
    preempted: Count = 0
    """Times the task was preempted: above 0, an executor handed it back to
    the balancer, which puts it at the front of its tenant's line."""


class TaskAssigned(Message):
    """The balancer hands a task to one node's queue."""

    kind: Literal["task.assigned"] = "task.assigned"
    schema_version: ClassVar[int] = 4
    # v1: its task was v1; v2: no devices; v3: its task had no tenant, priority
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    task: TaskSubmitted
    demand: ResourceVector
    node_id: Identifier
    devices: tuple[DeviceIndex, ...] = ()
    """The GPU devices of the node the executor binds the task to."""
    dispatch: Count = 1
    assigned_at: Timestamp = Field(default_factory=now)
    preempted: Count = 0
    """Times the task was preempted before this assignment (runs that count
    as no failure)."""


__all__ = [
    "NodeScore",
    "PlacementExplanation",
    "TaskAssigned",
    "TaskPlaced",
    "TaskSubmitted",
]
