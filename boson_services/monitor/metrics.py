"""The monitor's Prometheus metrics, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from boson_services.monitor.tenant_metrics import TenantGauges
from boson_shared.contract.messages import NodeHeartbeat

RESOURCES = ("cpu", "memory", "gpu")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


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

    def observe_node(self, beat: NodeHeartbeat, alive: bool) -> None:
        node = beat.node_id
        self.node_alive.labels(node).set(1 if alive else 0)
        self.node_running.labels(node).set(beat.running)
        self.node_free_slots.labels(node).set(beat.free_slots)
        for resource, capacity, allocated in zip(
            RESOURCES, beat.capacity.as_tuple(), beat.allocated.as_tuple(), strict=True
        ):
            self.node_capacity_units.labels(node, resource).set(capacity)
            self.node_allocated_units.labels(node, resource).set(allocated)
            utilisation = allocated / capacity if capacity > 0 else 0.0
            self.node_allocated_utilisation.labels(node, resource).set(utilisation)
        self.node_measured_utilisation.labels(node, "cpu").set(beat.measured_cpu)
        self.node_measured_utilisation.labels(node, "memory").set(beat.measured_memory)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["MonitorMetrics"]
