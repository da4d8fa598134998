"""The cluster as JSON: one set of functions for the dashboard, its API and ``boson status``.

Everything here works on :class:`~boson_shared.contract.messages.NodeState`
(the monitor's view of a node, as a :class:`ClusterSnapshot` carries it), so
the page, ``GET /api/nodes`` and the CLI — which reads the published snapshot
over the bus — shape a node the same way and never disagree. No web library is
imported here: ``boson status`` works without the ``web`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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


def node_out(node: NodeState) -> NodeOut:
    capacity, allocated = node.capacity.as_tuple(), node.allocated.as_tuple()
    measured: tuple[float | None, ...] = (node.measured_cpu, node.measured_memory, None)
    shares = [share(a, c) for a, c in zip(allocated, capacity, strict=True) if c > 0]
    return NodeOut(
        node_id=node.node_id,
        status=node_status(node),
        alive=node.alive,
        on_probation=node.on_probation,
        slots=node.slots,
        # A dead node's last heartbeat says nothing about now.
        running=node.running if node.alive else None,
        free_slots=node.free_slots if node.alive else None,
        allocated_utilisation=sum(shares) / len(shares) if shares else 0.0,
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
    """The whole cluster; capacity and use count the nodes that are up only."""
    alive = [node for node in nodes if node.alive]
    resources: dict[str, ResourceUse] = {}
    for index, name in enumerate(RESOURCES):
        capacity = sum(node.capacity.as_tuple()[index] for node in alive)
        allocated = sum(node.allocated.as_tuple()[index] for node in alive)
        measured: float | None = None
        if name != "gpu" and capacity > 0:
            # Measured shares weighted by each node's capacity of that resource.
            weighted = sum(
                (node.measured_cpu if name == "cpu" else node.measured_memory)
                * node.capacity.as_tuple()[index]
                for node in alive
            )
            measured = weighted / capacity
        resources[name] = ResourceUse(
            capacity=capacity,
            allocated=allocated,
            allocated_share=share(allocated, capacity),
            measured_share=measured,
        )
    probation = sum(1 for node in alive if node.on_probation)
    return ClusterTotals(
        nodes=len(nodes),
        up=len(alive) - probation,
        down=len(nodes) - len(alive),
        probation=probation,
        slots=sum(node.slots for node in alive),
        running=sum(node.running for node in nodes),
        free_slots=sum(node.free_slots for node in alive),
        resources=resources,
        backlog=backlog,
    )


_SORT_KEYS: dict[str, Callable[[NodeOut], float | str]] = {
    "allocated": lambda node: node.allocated_utilisation,
    "measured": lambda node: max(node.measured_cpu, node.measured_memory),
    "running": lambda node: node.running if node.running is not None else -1,
}
"""Busiest first; ``id`` sorts by name."""


def nodes_page(
    nodes: Iterable[NodeOut],
    *,
    status: NodeStatus | None = None,
    search: str = "",
    sort: NodeSort = "id",
    offset: int = 0,
    limit: int = 50,
) -> NodesPage:
    """Filter, sort and cut: what one page of the cluster view shows."""
    chosen = [
        node
        for node in nodes
        if (status is None or node.status == status) and search in node.node_id
    ]
    if sort == "id":
        chosen.sort(key=lambda node: node.node_id)
    else:
        chosen.sort(key=_SORT_KEYS[sort], reverse=True)
    return NodesPage(
        total=len(chosen), offset=offset, limit=limit, nodes=chosen[offset : offset + limit]
    )


__all__ = [
    "RESOURCES",
    "ClusterTotals",
    "NodeOut",
    "NodeSort",
    "NodeStatus",
    "NodesPage",
    "Out",
    "ResourceUse",
    "node_out",
    "node_status",
    "nodes_page",
    "share",
    "totals",
]
