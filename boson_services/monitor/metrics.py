"""The monitor's Prometheus metrics, in a registry of its own (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from boson_services.monitor.node_metrics import NodeSeries
from boson_services.monitor.tenant_metrics import TenantGauges
from boson_shared.contract.messages import NodeState

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class MonitorMetrics:
    """Series per node (read from the view when scraped), task counters and latency histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
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
        self._nodes: NodeSeries | None = None
        """The per-node series (:mod:`~boson_services.monitor.node_metrics`), once watched."""

    def watch_nodes(self, nodes: Callable[[], Iterable[NodeState]]) -> None:
        """Export the per-node series of ``nodes``, read at each scrape (once)."""
        if self._nodes is not None:
            raise RuntimeError("the per-node series are already watched")
        self._nodes = NodeSeries(nodes)
        self.registry.register(self._nodes)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["MonitorMetrics"]
