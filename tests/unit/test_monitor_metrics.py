"""The monitor's per-node gauges: each heartbeat's values, as a scrape reads them."""

from __future__ import annotations

from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.view import ClusterView
from boson_shared.contract.messages import NodeHeartbeat, ResourceVector
from boson_shared.contract.topology import Names


def beat(seq: int, *, running: int, cpu: float) -> NodeHeartbeat:
    return NodeHeartbeat(
        node_id="n1",
        seq=seq,
        started_at=1.0,
        capacity=ResourceVector(cpu=800, memory=1600, gpu=2),
        allocated=ResourceVector(cpu=100 * running, memory=150 * running, gpu=running % 3),
        slots=8,
        running=running,
        free_slots=8 - running,
        measured_cpu=cpu,
        measured_memory=cpu / 2,
    )


def sample(metrics: MonitorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"node": "n1", **labels})


def test_every_heartbeat_sets_the_nodes_gauges_to_its_values() -> None:
    metrics = MonitorMetrics()
    for seq, running, cpu in ((1, 2, 0.25), (2, 1, 0.75)):
        metrics.observe_node(beat(seq, running=running, cpu=cpu), alive=True)
        assert sample(metrics, "boson_node_alive") == 1
        assert sample(metrics, "boson_node_running_tasks") == running
        assert sample(metrics, "boson_node_free_slots") == 8 - running
        for resource, capacity, allocated in (
            ("cpu", 800, 100 * running),
            ("memory", 1600, 150 * running),
            ("gpu", 2, running % 3),
        ):
            assert sample(metrics, "boson_node_capacity_units", resource=resource) == capacity
            assert sample(metrics, "boson_node_allocated_units", resource=resource) == allocated
            assert (
                sample(metrics, "boson_node_allocated_utilisation", resource=resource)
                == allocated / capacity
            )
        assert sample(metrics, "boson_node_measured_utilisation", resource="cpu") == cpu
        assert sample(metrics, "boson_node_measured_utilisation", resource="memory") == cpu / 2


def test_a_node_gone_quiet_reads_down_and_its_heartbeat_brings_it_back() -> None:
    clock = [0.0]
    metrics = MonitorMetrics()
    monitor = MonitorHandlers(
        ClusterView(down_after_s=3.0),
        metrics,
        Names("t"),
        "m1",
        backlog_alert_threshold=1000,
        clock=lambda: clock[0],
    )
    monitor.on_heartbeat(beat(1, running=1, cpu=0.1))
    clock[0] = 4.0
    monitor.tick()
    assert sample(metrics, "boson_node_alive") == 0
    monitor.on_heartbeat(beat(2, running=1, cpu=0.1))
    assert sample(metrics, "boson_node_alive") == 1
