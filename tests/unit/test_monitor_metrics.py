"""The monitor's per-node series: each node's latest heartbeat, as a scrape reads it."""

from __future__ import annotations

import pytest

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


def handlers(metrics: MonitorMetrics, clock: list[float]) -> MonitorHandlers:
    return MonitorHandlers(
        ClusterView(down_after_s=3.0),
        metrics,
        Names("t"),
        "m1",
        backlog_alert_threshold=1000,
        clock=lambda: clock[0],
    )


def test_a_scrape_shows_each_nodes_latest_heartbeat() -> None:
    metrics = MonitorMetrics()
    monitor = handlers(metrics, [0.0])
    for seq, running, cpu in ((1, 2, 0.25), (2, 1, 0.75)):
        monitor.on_heartbeat(beat(seq, running=running, cpu=cpu))
        assert sample(metrics, "boson_node_alive") == 1
        assert sample(metrics, "boson_node_on_probation") == 0
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


def test_a_node_never_heard_has_no_series_and_the_families_are_described() -> None:
    metrics = MonitorMetrics()
    handlers(metrics, [0.0])
    assert sample(metrics, "boson_node_alive") is None
    text = metrics.render().decode()
    assert "# TYPE boson_node_alive gauge" in text
    assert "# TYPE boson_node_measured_utilisation gauge" in text


def test_the_per_node_series_are_watched_once() -> None:
    metrics = MonitorMetrics()
    handlers(metrics, [0.0])
    with pytest.raises(RuntimeError, match="already watched"):
        handlers(metrics, [0.0])


def test_a_node_gone_quiet_reads_down_and_its_heartbeat_brings_it_back() -> None:
    clock = [0.0]
    metrics = MonitorMetrics()
    monitor = handlers(metrics, clock)
    monitor.on_heartbeat(beat(1, running=1, cpu=0.1))
    clock[0] = 4.0
    monitor.tick()
    assert sample(metrics, "boson_node_alive") == 0
    monitor.on_heartbeat(beat(2, running=1, cpu=0.1))
    assert sample(metrics, "boson_node_alive") == 1
