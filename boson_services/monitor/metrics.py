"""The monitor's Prometheus metrics, in a registry of its own (no global state)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from boson_services.monitor.tenant_metrics import TenantGauges
from boson_shared.contract.messages import NodeHeartbeat

RESOURCES = ("cpu", "memory", "gpu")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True, slots=True)
class NodeGauges:
    """One node's labelled gauges, looked up once: ``labels()`` per heartbeat
    (fourteen of them) was most of what a heartbeat cost the monitor's handler."""

    alive: Gauge
    on_probation: Gauge
    running: Gauge
    free_slots: Gauge
    capacity: tuple[Gauge, ...]
    """Per resource, in :data:`RESOURCES` order (as are the next two)."""
    allocated: tuple[Gauge, ...]
    allocated_utilisation: tuple[Gauge, ...]
    measured_cpu: Gauge
    measured_memory: Gauge


class MonitorMetrics:
    """Gauges per node, task counters and latency histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.node_alive = Gauge(
            "boson_node_alive", "1 while the node heartbeats", ["node"], registry=r
        )
        self.node_on_probation = Gauge(
            "boson_node_on_probation",
            "1 while the node, back from failing, takes no new work",
            ["node"],
            registry=r,
        )
        self.node_allocated_units = Gauge(
            "boson_node_allocated_units",
            "Demand units allocated on the node",
            ["node", "resource"],
            registry=r,
        )
        self.node_capacity_units = Gauge(
            "boson_node_capacity_units",
            "Node capacity in demand units",
            ["node", "resource"],
            registry=r,
        )
        self.node_allocated_utilisation = Gauge(
            "boson_node_allocated_utilisation",
            "Allocated demand / capacity (what placement scores)",
            ["node", "resource"],
            registry=r,
        )
        self.node_measured_utilisation = Gauge(
            "boson_node_measured_utilisation",
            "Measured utilisation from heartbeats, in [0, 1]",
            ["node", "resource"],
            registry=r,
        )
        self.node_running = Gauge("boson_node_running_tasks", "Tasks running", ["node"], registry=r)
        self.node_free_slots = Gauge("boson_node_free_slots", "Free slots", ["node"], registry=r)
        self.queue_depth = Gauge(
            "boson_queue_depth", "Messages ready in a queue", ["queue"], registry=r
        )
        self.tasks_placed = Counter("boson_tasks_placed", "Tasks placed on a node", registry=r)
        self.tasks_pending = Counter(
            "boson_tasks_pending", "Tasks placed as pending (no node fits now)", registry=r
        )
        self.tasks_completed = Counter("boson_tasks_completed", "Tasks that succeeded", registry=r)
        self.tasks_failed = Counter("boson_tasks_failed", "Tasks that failed", registry=r)
        self.tasks_cancelled = Counter(
            "boson_tasks_cancelled", "Tasks cancelled at someone's request", registry=r
        )
        self.placement_latency = Histogram(
            "boson_placement_latency_seconds",
            "Submission to placement",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.task_latency = Histogram(
            "boson_task_latency_seconds",
            "Submission to result (end to end)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.backlog = Gauge(
            "boson_balancer_backlog", "Work the balancer holds, by state", ["state"], registry=r
        )
        self.alerts = Counter("boson_alerts", "Alerts raised", ["reason"], registry=r)
        self.tenants = TenantGauges(r)
        self._nodes: dict[str, NodeGauges] = {}

    def node(self, node: str) -> NodeGauges:
        """The node's gauges (their label sets made at its first use, then kept)."""
        gauges = self._nodes.get(node)
        if gauges is None:
            gauges = self._nodes[node] = NodeGauges(
                alive=self.node_alive.labels(node),
                on_probation=self.node_on_probation.labels(node),
                running=self.node_running.labels(node),
                free_slots=self.node_free_slots.labels(node),
                capacity=tuple(self.node_capacity_units.labels(node, r) for r in RESOURCES),
                allocated=tuple(self.node_allocated_units.labels(node, r) for r in RESOURCES),
                allocated_utilisation=tuple(
                    self.node_allocated_utilisation.labels(node, r) for r in RESOURCES
                ),
                measured_cpu=self.node_measured_utilisation.labels(node, "cpu"),
                measured_memory=self.node_measured_utilisation.labels(node, "memory"),
            )
        return gauges

    def observe_node(self, beat: NodeHeartbeat, alive: bool) -> None:
        gauges = self.node(beat.node_id)
        gauges.alive.set(1 if alive else 0)
        gauges.running.set(beat.running)
        gauges.free_slots.set(beat.free_slots)
        for capacity, allocated, capacity_gauge, allocated_gauge, utilisation_gauge in zip(
            beat.capacity.as_tuple(),
            beat.allocated.as_tuple(),
            gauges.capacity,
            gauges.allocated,
            gauges.allocated_utilisation,
            strict=True,
        ):
            capacity_gauge.set(capacity)
            allocated_gauge.set(allocated)
            utilisation_gauge.set(allocated / capacity if capacity > 0 else 0.0)
        gauges.measured_cpu.set(beat.measured_cpu)
        gauges.measured_memory.set(beat.measured_memory)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["MonitorMetrics", "NodeGauges"]
