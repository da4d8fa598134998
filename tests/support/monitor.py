"""The monitor's handlers without a broker: heartbeats in, the live view out."""

from __future__ import annotations

from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.view import ClusterView
from boson_shared.contract.messages import NodeHeartbeat, ResourceVector
from boson_shared.contract.topology import Names
from tests.support.fakes import Clock


def heartbeat(node: str, *, seq: int = 1, cpu_load: float = 0.3) -> NodeHeartbeat:
    """A heartbeat of a 400-cpu, 800-memory, 4-slot node running two tasks."""
    return NodeHeartbeat(
        node_id=node,
        seq=seq,
        started_at=1.0,
        capacity=ResourceVector(cpu=400, memory=800, gpu=0),
        allocated=ResourceVector(cpu=100, memory=200),
        slots=4,
        running=2,
        free_slots=2,
        measured_cpu=cpu_load,
        measured_memory=0.25,
    )


def monitor_state(nodes: int = 3) -> tuple[MonitorHandlers, Clock]:
    """A monitor that has heard one heartbeat from each of ``nodes`` nodes."""
    clock = Clock(100.0)
    handlers = MonitorHandlers(
        ClusterView(down_after_s=3.0, overload_threshold=0.9, overload_sustain_s=0.0),
        MonitorMetrics(),
        Names(namespace="dash-test"),
        "monitor-1",
        backlog_alert_threshold=10,
        clock=clock,
    )
    for number in range(nodes):
        handlers.on_heartbeat(heartbeat(f"node-{number:04d}"))
    return handlers, clock


__all__ = ["heartbeat", "monitor_state"]
