"""The per-node Prometheus series, read from the monitor's view when scraped.

Every node heartbeats once an interval, and a scrape comes every fifteen
seconds or so: setting each node's fourteen labelled gauges at every
heartbeat did that work fifteen times for each time it was read, on the
loop that takes the heartbeats. :class:`NodeSeries` is a prometheus_client
collector instead: at each scrape it reads every node as the view would put
it in a snapshot now (its latest heartbeat, liveness and probation, by the
view's one rule: :meth:`~boson_services.monitor.view.ClusterView.node_states`)
and builds the series then. A scrape so always shows the view as it is (a
node declared down, a probation that ended), and nothing is kept per node
besides the view's own record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from boson_shared.contract.messages import NodeState
from boson_shared.scheduling.tenants import RESOURCES


class NodeSeries(Collector):
    """The per-node series of every node in the view, built at each scrape."""

    def __init__(self, nodes: Callable[[], Iterable[NodeState]]) -> None:
        self._nodes = nodes

    def describe(self) -> Iterator[Metric]:
        # The families without samples: registering reads no node.
        return iter(_families())

    def collect(self) -> Iterator[Metric]:
        families = _families()
        (alive, probation, running, free, capacity, allocated, utilisation, measured) = families
        for state in self._nodes():
            node = state.node_id
            alive.add_metric([node], 1.0 if state.alive else 0.0)
            probation.add_metric([node], 1.0 if state.on_probation else 0.0)
            running.add_metric([node], state.running)
            free.add_metric([node], state.free_slots)
            for resource, has, held in zip(
                RESOURCES, state.capacity.as_tuple(), state.allocated.as_tuple(), strict=True
            ):
                capacity.add_metric([node, resource], has)
                allocated.add_metric([node, resource], held)
                utilisation.add_metric([node, resource], held / has if has > 0 else 0.0)
            measured.add_metric([node, "cpu"], state.measured_cpu)
            measured.add_metric([node, "memory"], state.measured_memory)
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


__all__ = ["NodeSeries"]
