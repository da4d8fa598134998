"""The monitor's handlers: typed message in, alerts and snapshots out."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.view import ClusterView
from boson_shared.contract.messages import (
    Alert,
    BalancerBacklog,
    ClusterSnapshot,
    Message,
    NodeHeartbeat,
    NodeState,
    PlacementExplanation,
    TaskEvent,
    TaskPlaced,
    TaskResult,
)
from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.contract.topology import RK_SNAPSHOT, Names, rk_alert
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route

RECENT_ALERTS = 200
RECENT_EXPLANATIONS = 100
"""Placement explanations kept for the dashboard's task page (each lists
every node, so few are kept)."""
MEMBERSHIP_SNAPSHOT_GAP_S = 0.2
"""Least time between two snapshots sent because membership changed: a
thousand nodes joining at once (a monitor restart) make a few snapshots, not
one per node (each as big as the cluster); the periodic tick sends the rest."""


class MonitorHandlers:
    """State and reactions of one monitor instance."""

    def __init__(
        self,
        view: ClusterView,
        metrics: MonitorMetrics,
        names: Names,
        monitor_id: str,
        *,
        backlog_alert_threshold: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = view
        self.metrics = metrics
        self.names = names
        self.monitor_id = monitor_id
        self.backlog_alert_threshold = backlog_alert_threshold
        self.clock = clock
        self.snapshot_seq = 0
        self.backlog = BalancerBacklog(pending=0, held=0)
        self._backlog_alerted = False
        self._last_snapshot_at = float("-inf")
        self.recent_alerts: deque[Alert] = deque(maxlen=RECENT_ALERTS)
        """The alerts raised last, newest at the right (the dashboard lists them)."""
        self.recent_explanations: OrderedDict[str, PlacementExplanation] = OrderedDict()
        """Why the last tasks submitted with ``explain`` went where they went, by task id."""
        self.latest_snapshot: ClusterSnapshot | None = None
        """The snapshot sent last (the dashboard reads it rather than building its own)."""
        metrics.watch_nodes(self.node_states)

    async def handle(self, message: Message) -> Sequence[Emit]:
        if isinstance(message, NodeHeartbeat):
            return self.on_heartbeat(message)
        if isinstance(message, TaskPlaced):
            return self.on_placed(message)
        if isinstance(message, TaskResult):
            return self.on_result(message)
        if isinstance(message, BalancerBacklog):
            return self.on_backlog(message)
        if isinstance(message, TenantsReport):
            return self.on_tenants(message)
        raise TypeError(f"monitor does not handle {message.kind}")

    def on_heartbeat(self, beat: NodeHeartbeat) -> list[Emit]:
        alerts = self.view.observe(beat, self.clock())
        emits = self.alert_emits(alerts)
        recently = self.clock() - self._last_snapshot_at < MEMBERSHIP_SNAPSHOT_GAP_S
        if self.view.membership_changed and not recently:
            # A node joined or came back: schedulers should know now, not next tick.
            emits.append(self.snapshot_emit())
        return emits

    def on_connection(self, connected: bool) -> None:
        """The monitor's own connection dropped (False) or is back and consuming (True)."""
        if connected:
            self.view.regained_contact(self.clock())
        else:
            self.view.lost_contact(self.clock())

    def on_placed(self, placed: TaskPlaced) -> list[Emit]:
        self._count_placement(
            placed.task.task_id,
            pending=placed.node_id is None,
            latency=placed.placed_at - placed.task.submitted_at,
            explanation=placed.explanation,
        )
        return []

    def on_recorded(self, events: Sequence[TaskEvent | TaskResult]) -> None:
        """Count what the task record stored first: its placements and outcomes.

        With the record on, the monitor learns of placements and results
        from the record's events alone (each counted once, by the monitor
        whose transaction stored it), not from a copy on its own queue.
        """
        for event in events:
            if isinstance(event, TaskResult):
                self.on_result(event)
            elif event.stage in ("placed", "pending"):
                self._count_placement(
                    event.task_id,
                    pending=event.stage == "pending",
                    latency=event.at - event.submitted_at,
                    explanation=event.explanation,
                )

    def _count_placement(
        self,
        task_id: str,
        *,
        pending: bool,
        latency: float,
        explanation: PlacementExplanation | None,
    ) -> None:
        if pending:
            self.metrics.tasks_pending.inc()
        else:
            self.metrics.tasks_placed.inc()
        self.metrics.placement_latency.observe(max(0.0, latency))
        if explanation is not None:
            self.recent_explanations[task_id] = explanation
            while len(self.recent_explanations) > RECENT_EXPLANATIONS:
                self.recent_explanations.popitem(last=False)

    def on_result(self, result: TaskResult) -> list[Emit]:
        if result.status == "succeeded":
            self.metrics.tasks_completed.inc()
        elif result.status == "cancelled":
            self.metrics.tasks_cancelled.inc()
        else:
            self.metrics.tasks_failed.inc()
        self.metrics.task_latency.observe(max(0.0, result.finished_at - result.submitted_at))
        return []

    def on_backlog(self, backlog: BalancerBacklog) -> list[Emit]:
        self.backlog = backlog
        self.metrics.backlog.labels("pending").set(backlog.pending)
        self.metrics.backlog.labels("held").set(backlog.held)
        total = backlog.pending + backlog.held
        if total < self.backlog_alert_threshold:
            self._backlog_alerted = False
            return []
        if self._backlog_alerted:
            return []
        self._backlog_alerted = True
        alert = Alert(
            reason="backlog",
            severity="warning",
            value=float(total),
            detail=f"balancer holds {total} undispatched tasks "
            f"(threshold {self.backlog_alert_threshold})",
        )
        return self.alert_emits([alert])

    def on_tenants(self, report: TenantsReport) -> list[Emit]:
        """The balancer's latest word on the tenants: into the view and the gauges."""
        if self.view.observe_tenants(report):
            self.metrics.tenants.observe(report)
        return []

    def tick(self) -> list[Emit]:
        """The periodic sweep: liveness, overload, and the regular snapshot."""
        alerts = self.view.sweep(self.clock())
        return [*self.alert_emits(alerts), self.snapshot_emit()]

    def snapshot(self) -> ClusterSnapshot:
        self.snapshot_seq += 1
        self._last_snapshot_at = self.clock()
        snapshot = self.view.snapshot(
            self.monitor_id,
            self.snapshot_seq,
            backlog=self.backlog.pending + self.backlog.held,
            taken_at=time.time(),
            now=self.clock(),
        )
        self.latest_snapshot = snapshot
        return snapshot

    def node_states(self) -> list[NodeState]:
        """Every node as a snapshot would show it now (the per-node series, at each scrape)."""
        return self.view.node_states(self.clock())

    def snapshot_emit(self) -> Emit:
        return Emit(Route(self.names.events_exchange, RK_SNAPSHOT), self.snapshot())

    def alert_emits(self, alerts: Sequence[Alert]) -> list[Emit]:
        for alert in alerts:
            self.metrics.alerts.labels(alert.reason).inc()
        self.recent_alerts.extend(alerts)
        return [Emit(Route(self.names.events_exchange, rk_alert(a.reason)), a) for a in alerts]


__all__ = ["RECENT_EXPLANATIONS", "MonitorHandlers"]
