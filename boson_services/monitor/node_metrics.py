"""The per-node Prometheus series, read from the monitor's view when scraped.

Every node heartbeats once an interval, and a scrape comes every fifteen
seconds or so: setting each node's fourteen labelled gauges at every
heartbeat did that work fifteen times for each time it was read, on the
loop that takes the heartbeats. :class:`NodeSeries` is a prometheus_client
collector instead: at each scrape it reads every node's latest heartbeat,
liveness and probation from the view and builds the series then. A scrape
so always shows the view as it is (a node declared down, a probation that
ended), and nothing is kept per node besides the view's own record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from boson_shared.contract.messages import NodeHeartbeat
from boson_shared.scheduling.tenants import RESOURCES


class NodeRow(NamedTuple):
    """What the series show of one node."""

    node_id: str
    heartbeat: NodeHeartbeat
    """The latest heard."""
    alive: bool
    on_probation: bool


class NodeSeries(Collector):
    """The per-node series of every node in the view, built at each scrape."""

    def __init__(self, rows: Callable[[], Iterable[NodeRow]]) -> None:
        self._rows = rows

    def describe(self) -> Iterator[Metric]:
        # The families without samples: registering reads no node.
        return iter(_families())

    def collect(self) -> Iterator[Metric]:
        families = _families()
        (alive, probation, running, free, capacity, allocated, utilisation, measured) = families
        for row in self._rows():
            node = row.node_id
            beat = row.heartbeat
            alive.add_metric([node], 1.0 if row.alive else 0.0)
            probation.add_metric([node], 1.0 if row.on_probation else 0.0)
            running.add_metric([node], beat.running)
            free.add_metric([node], beat.free_slots)
            for resource, has, held in zip(
                RESOURCES, beat.capacity.as_tuple(), beat.allocated.as_tuple(), strict=True
            ):
                capacity.add_metric([node, resource], has)
                allocated.add_metric([node, resource], held)
                utilisation.add_metric([node, resource], held / has if has > 0 else 0.0)
            measured.add_metric([node, "cpu"], beat.measured_cpu)
            measured.add_metric([node, "memory"], beat.measured_memory)
        return iter(families)


def _families() -> tuple[GaugeMetricFamily, ...]:
    node = ["node"]
    per_resource = ["node", "resource"]
    return (
        GaugeMetricFamily("boson_node_alive", "1 while the node heartbeats", labels=node),
        GaugeMetricFamily(
            "boson_node_on_probation",
            "1 while the node, back from failing, takes no new work",
            labels=node,
        ),
        GaugeMetricFamily("boson_node_running_tasks", "Tasks running", labels=node),
        GaugeMetricFamily("boson_node_free_slots", "Free slots", labels=node),
        GaugeMetricFamily(
            "boson_node_capacity_units", "Node capacity in demand units", labels=per_resource
        ),
        GaugeMetricFamily(
            "boson_node_allocated_units",
            "Demand units allocated on the node",
            labels=per_resource,
        ),
        GaugeMetricFamily(
            "boson_node_allocated_utilisation",
            "Allocated demand / capacity (what placement scores)",
            labels=per_resource,
        ),
        GaugeMetricFamily(
            "boson_node_measured_utilisation",
            "Measured utilisation from heartbeats, in [0, 1]",
            labels=per_resource,
        ),
    )


__all__ = ["NodeRow", "NodeSeries"]
