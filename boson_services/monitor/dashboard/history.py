"""The last hour of the cluster, in memory and bounded.

Every ``interval_s`` the dashboard takes one :class:`Sample`: mean
utilisation of the nodes that are up, how many are up, and — from the
monitor's own Prometheus counters and latency histogram, read through their
public ``collect()`` — how many results arrived since the last sample and
their submit→result latency quantiles. Nothing in the message path changes:
the page shows the same numbers Prometheus scrapes. A ``deque`` with
``maxlen`` keeps it bounded whatever the uptime.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from boson_services.monitor.dashboard.present import Out, totals
from boson_services.monitor.metrics import MonitorMetrics
from boson_shared.contract.messages import NodeState

HOUR_S = 3600.0


class Sample(Out):
    at: float
    """Wall-clock seconds."""
    nodes_up: int
    nodes_down: int
    allocated_cpu: float
    allocated_memory: float
    allocated_gpu: float
    measured_cpu: float | None
    measured_memory: float | None
    running: int
    backlog: int
    succeeded_per_s: float
    failed_per_s: float
    latency_p50_s: float | None
    latency_p99_s: float | None


def counter_value(counter: Counter) -> float:
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                return float(sample.value)
    return 0.0


def histogram_buckets(histogram: Histogram) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs, ``+Inf`` last."""
    buckets: list[tuple[float, float]] = []
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), float(sample.value)))
    return sorted(buckets)


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of cumulative buckets, interpolated as Prometheus does."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class _Cursor:
    at: float
    succeeded: float
    failed: float
    buckets: list[tuple[float, float]]


class History:
    """One sample per interval over the last hour."""

    def __init__(
        self,
        *,
        succeeded: Counter,
        failed: Counter,
        latency: Histogram,
        interval_s: float = 10.0,
        span_s: float = HOUR_S,
    ) -> None:
        self.succeeded = succeeded
        self.failed = failed
        self.latency = latency
        self.interval_s = interval_s
        self.samples: deque[Sample] = deque(maxlen=max(1, math.ceil(span_s / interval_s)))
        self._cursor: _Cursor | None = None

    @classmethod
    def from_metrics(cls, metrics: MonitorMetrics, *, interval_s: float = 10.0) -> History:
        """The history of a monitor's results, as its Prometheus metrics count them."""
        return cls(
            succeeded=metrics.tasks_completed,
            failed=metrics.tasks_failed,
            latency=metrics.task_latency,
            interval_s=interval_s,
        )

    def take(self, nodes: Sequence[NodeState], backlog: int, at: float) -> Sample | None:
        """Record one sample; the first call only sets the counters' starting point."""
        cursor = _Cursor(
            at,
            counter_value(self.succeeded),
            counter_value(self.failed),
            histogram_buckets(self.latency),
        )
        previous, self._cursor = self._cursor, cursor
        if previous is None or at <= previous.at:
            return None
        elapsed = at - previous.at
        window = [
            (bound, count - before)
            for (bound, count), (_, before) in zip(cursor.buckets, previous.buckets, strict=True)
        ]
        cluster = totals(nodes, backlog)
        sample = Sample(
            at=at,
            nodes_up=cluster.up + cluster.probation,
            nodes_down=cluster.down,
            allocated_cpu=cluster.resources["cpu"].allocated_share,
            allocated_memory=cluster.resources["memory"].allocated_share,
            allocated_gpu=cluster.resources["gpu"].allocated_share,
            measured_cpu=cluster.resources["cpu"].measured_share,
            measured_memory=cluster.resources["memory"].measured_share,
            running=cluster.running,
            backlog=backlog,
            succeeded_per_s=(cursor.succeeded - previous.succeeded) / elapsed,
            failed_per_s=(cursor.failed - previous.failed) / elapsed,
            latency_p50_s=quantile(window, 0.5),
            latency_p99_s=quantile(window, 0.99),
        )
        self.samples.append(sample)
        return sample


__all__ = ["HOUR_S", "History", "Sample", "counter_value", "histogram_buckets", "quantile"]
