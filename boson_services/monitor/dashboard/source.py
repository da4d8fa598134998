"""What the dashboard reads: the monitor's live state, shaped for the API.

The dashboard runs inside the monitor process and reads its state directly —
the :class:`ClusterView`, the balancer backlog, the recent alerts and the
Prometheus metrics — never a copy that could lag or disagree. Reading is
synchronous and never awaits, so a request sees one consistent moment of the
event loop the monitor's handlers also run on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from boson_services.monitor.dashboard.history import History, Sample, counter_value
from boson_services.monitor.dashboard.present import (
    ClusterTotals,
    NodeOut,
    NodeSort,
    NodesPage,
    NodeStatus,
    Out,
    node_out,
    nodes_page,
    totals,
)
from boson_services.monitor.handlers import MonitorHandlers
from boson_shared.contract.messages import Alert, NodeState

Severity = Literal["info", "warning", "critical"]


class AlertOut(Out):
    alert_id: str
    reason: str
    severity: Severity
    detail: str
    node_id: str | None
    value: float | None
    raised_at: float
    acknowledged: bool


class ActiveCondition(Out):
    """Something wrong now (not an event in the past)."""

    reason: Literal["node-down", "overload", "backlog"]
    severity: Severity
    node_id: str | None
    detail: str


class AlertsOut(Out):
    active: list[ActiveCondition]
    recent: list[AlertOut]


class ThroughputOut(Out):
    interval_s: float
    samples: list[Sample]
    completed_total: float
    failed_total: float


class Summary(Out):
    """What the live stream pushes: small, whatever the cluster's size."""

    at: float
    cluster: ClusterTotals
    active_alerts: int
    latest: Sample | None


@dataclass(frozen=True)
class Moment:
    """The cluster shaped once, shared by every request for ``max_age_s``."""

    taken: float
    nodes: list[NodeOut]
    totals: ClusterTotals


class DashboardSource:
    """The monitor's state as the dashboard's API answers it."""

    def __init__(
        self,
        handlers: MonitorHandlers,
        history: History,
        *,
        live_interval_s: float = 2.0,
        max_age_s: float = 0.5,
        wall_clock: Callable[[], float] = time.time,
        age_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handlers = handlers
        self.live_interval_s = live_interval_s
        """How often the live stream pushes a summary."""
        self.history = history
        self.wall_clock = wall_clock
        self.acknowledged: set[str] = set()
        self.max_age_s = max_age_s
        """How stale a read may be: shaping a thousand nodes once per this, not
        once per request, keeps reads cheap however many clients ask."""
        self.age_clock = age_clock
        self._moment: Moment | None = None

    # -- cluster -----------------------------------------------------------

    def node_states(self) -> list[NodeState]:
        return self.handlers.view.node_states(self.handlers.clock())

    def backlog(self) -> int:
        return self.handlers.backlog.pending + self.handlers.backlog.held

    def moment(self) -> Moment:
        now = self.age_clock()
        if self._moment is None or now - self._moment.taken >= self.max_age_s:
            states = self.node_states()
            self._moment = Moment(
                now, [node_out(node) for node in states], totals(states, self.backlog())
            )
        return self._moment

    def totals(self) -> ClusterTotals:
        return self.moment().totals

    def nodes(
        self,
        *,
        status: NodeStatus | None,
        search: str,
        sort: NodeSort,
        offset: int,
        limit: int,
    ) -> NodesPage:
        return nodes_page(
            self.moment().nodes,
            status=status,
            search=search,
            sort=sort,
            offset=offset,
            limit=limit,
        )

    def sample(self) -> Sample | None:
        """Add one point to the history (the dashboard's periodic job)."""
        return self.history.take(self.node_states(), self.backlog(), self.wall_clock())

    # -- alerts ------------------------------------------------------------

    def active(self) -> list[ActiveCondition]:
        view = self.handlers.view
        found: list[ActiveCondition] = []
        for node_id in sorted(view.nodes):
            record = view.nodes[node_id]
            if not record.alive:
                found.append(
                    ActiveCondition(
                        reason="node-down",
                        severity="critical",
                        node_id=node_id,
                        detail=f"node {node_id} sends no heartbeats",
                    )
                )
            elif record.overload_alerted:
                beat = record.heartbeat
                load = max(beat.measured_cpu, beat.measured_memory)
                found.append(
                    ActiveCondition(
                        reason="overload",
                        severity="warning",
                        node_id=node_id,
                        detail=f"node {node_id} measured at {load:.0%}",
                    )
                )
        backlog, threshold = self.backlog(), self.handlers.backlog_alert_threshold
        if backlog >= threshold:
            found.append(
                ActiveCondition(
                    reason="backlog",
                    severity="warning",
                    node_id=None,
                    detail=f"balancer holds {backlog} undispatched tasks (threshold {threshold})",
                )
            )
        return sorted(found, key=lambda condition: condition.severity != "critical")

    def find_alert(self, alert_id: str) -> Alert | None:
        for alert in self.handlers.recent_alerts:
            if alert.message_id == alert_id:
                return alert
        return None

    def acknowledge(self, alert_id: str) -> bool:
        """Mark a recent alert seen; False when no recent alert has that id."""
        if self.find_alert(alert_id) is None:
            return False
        known = {alert.message_id for alert in self.handlers.recent_alerts}
        self.acknowledged = {seen for seen in self.acknowledged if seen in known}
        self.acknowledged.add(alert_id)
        return True

    def alerts(self) -> AlertsOut:
        recent = [
            AlertOut(
                alert_id=alert.message_id,
                reason=alert.reason,
                severity=alert.severity,
                detail=alert.detail,
                node_id=alert.node_id,
                value=alert.value,
                raised_at=alert.raised_at,
                acknowledged=alert.message_id in self.acknowledged,
            )
            for alert in reversed(self.handlers.recent_alerts)
        ]
        return AlertsOut(active=self.active(), recent=recent)

    # -- throughput and the live stream --------------------------------------

    def throughput(self) -> ThroughputOut:
        metrics = self.handlers.metrics
        return ThroughputOut(
            interval_s=self.history.interval_s,
            samples=list(self.history.samples),
            completed_total=counter_value(metrics.tasks_completed),
            failed_total=counter_value(metrics.tasks_failed),
        )

    def summary(self) -> Summary:
        latest = self.history.samples[-1] if self.history.samples else None
        return Summary(
            at=self.wall_clock(),
            cluster=self.totals(),
            active_alerts=len(self.active()),
            latest=latest,
        )


__all__ = [
    "ActiveCondition",
    "AlertOut",
    "AlertsOut",
    "DashboardSource",
    "Moment",
    "Summary",
    "ThroughputOut",
]
