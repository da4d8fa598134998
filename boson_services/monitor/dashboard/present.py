"""The cluster as JSON: one set of functions for the dashboard, its API and ``boson status``.

Everything here works on :class:`~boson_shared.contract.messages.NodeState`
(the monitor's view of a node, as a :class:`ClusterSnapshot` carries it), so
the page, ``GET /api/nodes`` and the CLI — which reads the published snapshot
over the bus — shape a node the same way and never disagree. No web library is
imported here: ``boson status`` works without the ``web`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from boson_shared.contract.messages import NodeState

RESOURCES = ("cpu", "memory", "gpu")
NodeStatus = Literal["up", "down", "probation"]
NodeSort = Literal["id", "allocated", "measured", "running"]


class Out(BaseModel):
    """An API answer: frozen, no extra fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ResourceUse(Out):
    """One resource of one node (or of the cluster), in demand units."""

    capacity: float
    allocated: float
    allocated_share: Annotated[float, Field(description="allocated / capacity, 0 if none")]
    measured_share: Annotated[
        float | None, Field(description="measured utilisation in [0, 1]; none for gpu")
    ]


class NodeOut(Out):
    node_id: str
    status: NodeStatus
    alive: bool
    on_probation: bool
    slots: int
    running: Annotated[int | None, Field(description="None for a node that is down")]
    free_slots: Annotated[int | None, Field(description="None for a node that is down")]
    allocated_utilisation: Annotated[
        float, Field(description="mean allocated share over the resources it has")
    ]
    measured_cpu: float
    measured_memory: float
    resources: dict[str, ResourceUse]
    last_heartbeat_at: float


class ClusterTotals(Out):
    nodes: int
    up: int
    down: int
    probation: int
    slots: int
    running: int
    free_slots: int
    resources: dict[str, ResourceUse]
    backlog: int


class NodesPage(Out):
    """A page of nodes: the cluster stays readable at thousands of them."""

    total: Annotated[int, Field(description="nodes matching the filter")]
    offset: int
    limit: int
    nodes: list[NodeOut]


def share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def node_status(node: NodeState) -> NodeStatus:
    if not node.alive:
        return "down"
    return "probation" if node.on_probation else "up"


def allocated_utilisation(capacity: Sequence[float], allocated: Sequence[float]) -> float:
    """The mean allocated share over the resources a node has (0 with none)."""
    shares = [share(a, c) for a, c in zip(allocated, capacity, strict=True) if c > 0]
    return sum(shares) / len(shares) if shares else 0.0


def node_out(node: NodeState) -> NodeOut:
    capacity, allocated = node.capacity.as_tuple(), node.allocated.as_tuple()
    measured: tuple[float | None, ...] = (node.measured_cpu, node.measured_memory, None)
    return NodeOut(
        node_id=node.node_id,
        status=node_status(node),
        alive=node.alive,
        on_probation=node.on_probation,
        slots=node.slots,
        # A dead node's last heartbeat says nothing about now.
        running=node.running if node.alive else None,
        free_slots=node.free_slots if node.alive else None,
        allocated_utilisation=allocated_utilisation(capacity, allocated),
        measured_cpu=node.measured_cpu,
        measured_memory=node.measured_memory,
        resources={
            name: ResourceUse(
                capacity=c, allocated=a, allocated_share=share(a, c), measured_share=m
            )
            for name, c, a, m in zip(RESOURCES, capacity, allocated, measured, strict=True)
        },
        last_heartbeat_at=node.last_heartbeat_at,
    )


def totals(nodes: Sequence[NodeState], backlog: int) -> ClusterTotals:
    """The whole cluster; capacity and use count the nodes that are up only.

    One pass over the nodes, each vector read once: this runs on every
    state the dashboard shows and every history sample.
    """
    capacity = [0.0, 0.0, 0.0]
    allocated = [0.0, 0.0, 0.0]
    measured_weight = [0.0, 0.0]
    slots = free_slots = running = alive = probation = 0
    for node in nodes:
        running += node.running
        if not node.alive:
            continue
        alive += 1
        probation += node.on_probation
        slots += node.slots
        free_slots += node.free_slots
        node_capacity = node.capacity.as_tuple()
        node_allocated = node.allocated.as_tuple()
        for index in range(3):
            capacity[index] += node_capacity[index]
            allocated[index] += node_allocated[index]
        # Measured shares weighted by each node's capacity of that resource.
        measured_weight[0] += node.measured_cpu * node_capacity[0]
        measured_weight[1] += node.measured_memory * node_capacity[1]
    resources: dict[str, ResourceUse] = {}
    for index, name in enumerate(RESOURCES):
        measured: float | None = None
        if name != "gpu" and capacity[index] > 0:
            measured = measured_weight[index] / capacity[index]
        resources[name] = ResourceUse(
            capacity=capacity[index],
            allocated=allocated[index],
            allocated_share=share(allocated[index], capacity[index]),
            measured_share=measured,
        )
    return ClusterTotals(
        nodes=len(nodes),
        up=alive - probation,
        down=len(nodes) - alive,
        probation=probation,
        slots=slots,
        running=running,
        free_slots=free_slots,
        resources=resources,
        backlog=backlog,
    )


@dataclass(frozen=True)
class NodeRow:
    """A node with what the page filters and sorts it by, but not yet shaped.

    A page shows a few dozen of a cluster's nodes: only those become
    :class:`NodeOut` (the costly part), after filtering and sorting these.
    """

    node: NodeState
    status: NodeStatus
    allocated_utilisation: float
    measured: float
    running: int
    """-1 for a node that is down (sorts last among the busiest)."""


def node_rows(nodes: Iterable[NodeState]) -> list[NodeRow]:
    return [
        NodeRow(
            node,
            node_status(node),
            allocated_utilisation(node.capacity.as_tuple(), node.allocated.as_tuple()),
            max(node.measured_cpu, node.measured_memory),
            node.running if node.alive else -1,
        )
        for node in nodes
    ]


_SORT_KEYS: dict[str, Callable[[NodeRow], float]] = {
    "allocated": lambda row: row.allocated_utilisation,
    "measured": lambda row: row.measured,
    "running": lambda row: row.running,
}
"""Busiest first; ``id`` sorts by name."""


def nodes_page(
    rows: Iterable[NodeRow],
    *,
    status: NodeStatus | None = None,
    search: str = "",
    sort: NodeSort = "id",
    offset: int = 0,
    limit: int = 50,
) -> NodesPage:
    """Filter, sort and cut: what one page of the cluster view shows."""
    chosen = [
        row
        for row in rows
        if (status is None or row.status == status) and search in row.node.node_id
    ]
    if sort == "id":
        chosen.sort(key=lambda row: row.node.node_id)
    else:
        chosen.sort(key=_SORT_KEYS[sort], reverse=True)
    return NodesPage(
        total=len(chosen),
        offset=offset,
        limit=limit,
        nodes=[node_out(row.node) for row in chosen[offset : offset + limit]],
    )


__all__ = [
    "RESOURCES",
    "ClusterTotals",
    "NodeOut",
    "NodeRow",
    "NodeSort",
    "NodeStatus",
    "NodesPage",
    "Out",
    "ResourceUse",
    "allocated_utilisation",
    "node_out",
    "node_rows",
    "node_status",
    "nodes_page",
    "share",
    "totals",
]
