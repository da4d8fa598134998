"""The monitor's metrics endpoint, scraped over HTTP and parsed like Prometheus would.

The control plane runs as in ``test_control_plane`` (real services, one
connection each: ``tests/support/control_plane.py``); the monitor's routes are served by the same
:class:`~boson_shared.runtime.health.HealthServer` that ``boson_shared.runtime.main.serve``
starts, on a port the OS picks (``health_port=0``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from boson.client import TaskRequest
from boson_shared.runtime.health import HealthServer
from tests.support.control_plane import WAIT, ControlPlane
from tests.support.waiting import until

TASKS = 200
ALLOCATED = {"m1": 100.0, "m2": 250.0, "m3": 400.0}
CAPACITY = 10_000.0


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(5):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    content_type = next(
        line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type")
    )
    return int(lines[0].split()[1]), content_type, body


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def metrics_port(plane: ControlPlane) -> AsyncIterator[int]:
    await plane.start_control_plane(health_port=0)
    monitor = plane.monitor
    assert monitor is not None
    settings = monitor.settings
    assert settings.health_port == 0
    server = HealthServer(settings.health_host, settings.health_port, monitor.routes())
    await server.start()
    try:
        yield server.port
    finally:
        await server.close()


async def test_scraped_metrics_equal_the_state_the_test_created(
    plane: ControlPlane, metrics_port: int
) -> None:
    nodes = [
        await plane.start_node(node_id, allocated, hold_s=0.01, prefetch_factor=8)
        for node_id, allocated in ALLOCATED.items()
    ]
    await plane.until_scheduler_knows(len(nodes))
    client = await plane.client()
    handles = await client.submit_many(
        [TaskRequest("noop", complexity=1, data_size=0) for _ in range(TASKS)]
    )
    await asyncio.gather(*(handle.result(15) for handle in handles))

    samples: Samples = {}

    async def settled() -> bool:
        nonlocal samples
        status, content_type, body = await scrape(metrics_port)
        assert status == 200
        assert content_type.startswith("text/plain")
        samples = parse(body)
        return value(samples, "boson_tasks_completed_total") == TASKS

    async with asyncio.timeout(10):
        while not await settled():  # noqa: ASYNC110 - polling over HTTP, as a scraper does
            await asyncio.sleep(0.1)

    assert value(samples, "boson_tasks_placed_total") == TASKS
    assert value(samples, "boson_tasks_pending_total") == 0
    assert value(samples, "boson_tasks_completed_total") == TASKS
    assert value(samples, "boson_tasks_failed_total") == 0
    assert value(samples, "boson_placement_latency_seconds_count") == TASKS
    assert value(samples, "boson_task_latency_seconds_count") == TASKS
    for node_id, allocated in ALLOCATED.items():
        assert value(samples, "boson_node_alive", node=node_id) == 1
        for resource in ("cpu", "memory"):
            assert value(
                samples, "boson_node_allocated_units", node=node_id, resource=resource
            ) == pytest.approx(allocated)
            assert value(
                samples, "boson_node_capacity_units", node=node_id, resource=resource
            ) == pytest.approx(CAPACITY)
            assert value(
                samples, "boson_node_allocated_utilisation", node=node_id, resource=resource
            ) == pytest.approx(allocated / CAPACITY)
        assert value(samples, "boson_node_allocated_units", node=node_id, resource="gpu") == 0
        assert value(
            samples, "boson_node_measured_utilisation", node=node_id, resource="cpu"
        ) == pytest.approx(0.2)
        assert value(samples, "boson_node_free_slots", node=node_id) is not None
    submit_queue = nodes[0].names.submit_queue
    assert value(samples, "boson_queue_depth", queue=submit_queue) is not None


async def test_a_node_that_stops_heartbeating_shows_as_down(
    plane: ControlPlane, metrics_port: int
) -> None:
    nodes = [
        await plane.start_node(node_id, allocated, hold_s=0.0, prefetch_factor=2)
        for node_id, allocated in ALLOCATED.items()
    ]
    await plane.until_scheduler_knows(len(nodes))
    nodes[0].heartbeating = False
    monitor = plane.monitor
    assert monitor is not None
    await until(lambda: "m1" not in monitor.handlers.view.alive_nodes(), "m1 marked down", WAIT)
    samples = parse((await scrape(metrics_port))[2])
    assert value(samples, "boson_node_alive", node="m1") == 0
    assert value(samples, "boson_node_alive", node="m2") == 1
    assert value(samples, "boson_alerts_total", reason="node-down") == 1
    status, _, body = await scrape(metrics_port, "/backlog")
    assert status == 200
    assert '"alive_nodes": 2' in body
