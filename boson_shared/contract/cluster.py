"""The cluster's state (``node.heartbeat``, ``cluster.snapshot``, ``alert``,
``balancer.backlog``): what each executor reports of its node, the monitor's
view of them all, the alerts for operators and the balancer's backlog.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, TypeAlias

from pydantic import Field, StringConstraints

from boson_shared.contract.base import (
    Count,
    Fraction,
    Identifier,
    Message,
    Model,
    Timestamp,
    now,
)
from boson_shared.contract.resources import GpuState, ResourceVector


class NodeHeartbeat(Message):
    """An executor's periodic report of its capacity and real load."""

    kind: Literal["node.heartbeat"] = "node.heartbeat"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: no gpus
    node_id: Identifier
    seq: Count
    sent_at: Timestamp = Field(default_factory=now)
    started_at: Timestamp
    capacity: ResourceVector
    allocated: ResourceVector
    slots: Annotated[int, Field(ge=1, le=100_000)]
    running: Count
    free_slots: Count
    measured_cpu: Fraction
    measured_memory: Fraction
    gpus: tuple[GpuState, ...] = ()
    """Its GPU devices, in device order; the ``gpu`` of ``capacity`` is their count."""


class NodeState(Model):
    """The monitor's view of one node inside a :class:`ClusterSnapshot`."""

    node_id: Identifier
    alive: bool
    on_probation: bool = False
    """Back after failing and not yet trusted: it runs what it has, takes nothing new."""
    capacity: ResourceVector
    allocated: ResourceVector
    slots: Annotated[int, Field(ge=1, le=100_000)]
    running: Count
    free_slots: Count
    measured_cpu: Fraction
    measured_memory: Fraction
    last_heartbeat_at: Timestamp
    gpus: tuple[GpuState, ...] = ()


class ClusterSnapshot(Message):
    """The monitor's live view of the cluster, published periodically and on change."""

    kind: Literal["cluster.snapshot"] = "cluster.snapshot"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: its nodes had no gpus
    monitor_id: Identifier
    seq: Count
    taken_at: Timestamp = Field(default_factory=now)
    nodes: tuple[NodeState, ...]
    backlog: Count = 0


AlertReason: TypeAlias = Literal[
    "node-down", "node-up", "overload", "backlog", "anomaly", "task-failed"
]


class Alert(Message):
    """Something an operator should know about."""

    kind: Literal["alert"] = "alert"
    reason: AlertReason
    severity: Literal["info", "warning", "critical"]
    detail: Annotated[str, StringConstraints(max_length=4000)]
    node_id: Identifier | None = None
    task_id: Identifier | None = None
    value: float | None = None
    raised_at: Timestamp = Field(default_factory=now)


class BalancerBacklog(Message):
    """The balancer's count of work it holds but has not dispatched yet."""

    kind: Literal["balancer.backlog"] = "balancer.backlog"
    pending: Count
    held: Count
    reported_at: Timestamp = Field(default_factory=now)


__all__ = [
    "Alert",
    "AlertReason",
    "BalancerBacklog",
    "ClusterSnapshot",
    "NodeHeartbeat",
    "NodeState",
]
