"""What the dashboard reads: the monitor's live state, shaped for the API.

The dashboard runs inside the monitor process, but on a thread and event loop
of its own, so a request never waits behind the monitor's message work. The
two meet in one place: :meth:`DashboardSource.capture`, run on the monitor's
loop (after each snapshot tick), takes a :class:`MonitorState` — the node
states of the snapshot just sent, the backlog, the recent alerts and
placement explanations, which nodes are overloaded — immutable once taken,
and :meth:`DashboardSource.publish` swaps it in with one reference
assignment. The dashboard's thread only ever reads the latest state (and the
Prometheus metrics, which are thread-safe), so the two threads share no
mutable structure. In process (tests), ``capture_on_read`` captures on
demand instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from boson_services.monitor.dashboard.actions import Canceller
from boson_services.monitor.dashboard.history import History, Sample, counter_value
from boson_services.monitor.dashboard.present import (
    ClusterTotals,
    NodeRow,
    NodeSort,
    NodesPage,
    NodeStatus,
    Out,
    node_rows,
    nodes_page,
    totals,
)
from boson_services.monitor.dashboard.shared import JsonAnswer, SharedAnswers
from boson_services.monitor.dashboard.tasks import TaskReader
from boson_services.monitor.handlers import MonitorHandlers
from boson_shared.contract.messages import Alert, NodeState, PlacementExplanation
from boson_shared.contract.tenants_report import TenantsReport

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


def latest_tenants_report(handlers: MonitorHandlers) -> TenantsReport | None:
    """The tenants report the monitor's view holds (immutable: shared as it is)."""
    return handlers.view.tenants()


@dataclass(frozen=True)
class MonitorState:
    """What the monitor knew at one moment: immutable, safe to read from any thread."""

    taken: float
    """Monotonic seconds."""
    nodes: tuple[NodeState, ...]
    backlog: int
    backlog_threshold: int
    recent_alerts: tuple[Alert, ...]
    overloaded: Mapping[str, float] = field(default_factory=dict)
    """Nodes overloaded long enough to alert, with their measured load."""
    explanations: Mapping[str, PlacementExplanation] = field(default_factory=dict)
    tenants: TenantsReport | None = None
    """The active balancer's latest tenants report (None: none heard yet)."""


@dataclass(frozen=True)
class Moment:
    """One state shaped once, shared by every request until the next state.

    Nodes are kept as :class:`NodeRow`: a page shapes only the nodes it shows.
    """

    state: MonitorState
    nodes: list[NodeRow]
    totals: ClusterTotals
    active: list[ActiveCondition]


def active_conditions(state: MonitorState) -> list[ActiveCondition]:
    """What is wrong in ``state``: nodes down, nodes overloaded, a backlog; critical first."""
    found: list[ActiveCondition] = []
    for node in state.nodes:
        node_id = node.node_id
        if not node.alive:
            found.append(
                ActiveCondition(
                    reason="node-down",
                    severity="critical",
                    node_id=node_id,
                    detail=f"node {node_id} sends no heartbeats",
                )
            )
        elif node_id in state.overloaded:
            found.append(
                ActiveCondition(
                    reason="overload",
                    severity="warning",
                    node_id=node_id,
                    detail=f"node {node_id} measured at {state.overloaded[node_id]:.0%}",
                )
            )
    backlog, threshold = state.backlog, state.backlog_threshold
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


class DashboardSource:
    """The monitor's state as the dashboard's API answers it."""

    def __init__(
        self,
        handlers: MonitorHandlers,
        history: History,
        *,
        live_interval_s: float = 2.0,
        max_age_s: float = 0.5,
        capture_on_read: bool = True,
        tasks: TaskReader | None = None,
        canceller: Canceller | None = None,
        share_s: float = 1.0,
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
        """With ``capture_on_read``: how stale a read may be before it captures again."""
        self.capture_on_read = capture_on_read
        """Capture on the reading thread (in process only: the handlers' thread)."""
        self.age_clock = age_clock
        self.tasks = tasks
        """The task record (None: this monitor keeps none)."""
        self.canceller = canceller
        """What cancels tasks (None: cancel is not available)."""
        self.answers = SharedAnswers(share_s)
        """Identical reads within ``share_s`` share one answer (the freshness bound)."""
        self.acknowledgements = 0
        """Bumped by each acknowledgement: the alerts answer changes with it."""
        self._state: MonitorState | None = None
        self._moment: Moment | None = None

    # -- the state, taken on the monitor's loop ----------------------------------

    def capture(self, *, fresh: bool = False) -> MonitorState:
        """The monitor's state now. Call it where the handlers run (the monitor's loop).

        The node states are the last snapshot's (built anyway, once per tick)
        unless ``fresh`` or there is none yet.
        """
        handlers = self.handlers
        snapshot = handlers.latest_snapshot
        if fresh or snapshot is None:
            nodes = tuple(handlers.view.node_states(handlers.clock()))
        else:
            nodes = snapshot.nodes
        overloaded = {
            node_id: max(record.heartbeat.measured_cpu, record.heartbeat.measured_memory)
            for node_id, record in handlers.view.nodes.items()
            if record.alive and record.overload_alerted
        }
        return MonitorState(
            taken=self.age_clock(),
            nodes=nodes,
            backlog=handlers.backlog.pending + handlers.backlog.held,
            backlog_threshold=handlers.backlog_alert_threshold,
            recent_alerts=tuple(handlers.recent_alerts),
            overloaded=overloaded,
            explanations=dict(handlers.recent_explanations),
            tenants=latest_tenants_report(handlers),
        )

    def publish(self, state: MonitorState) -> None:
        """Make ``state`` the one readers see (one reference swap: atomic)."""
        self._state = state

    def state(self) -> MonitorState:
        state = self._state
        if self.capture_on_read and (
            state is None or self.age_clock() - state.taken >= self.max_age_s
        ):
            state = self.capture(fresh=True)
            self.publish(state)
        if state is None:
            raise RuntimeError("the dashboard read before the monitor captured its state")
        return state

    async def shared_json(self, read: Hashable, answer: Callable[[], BaseModel]) -> JsonAnswer:
        """``answer()`` as JSON, shared by identical reads of the same captured state."""
        taken = self.state().taken

        async def make() -> BaseModel:
            return answer()

        return await self.answers.json((taken, read), make)

    # -- cluster -----------------------------------------------------------

    def node_states(self) -> tuple[NodeState, ...]:
        return self.state().nodes

    def backlog(self) -> int:
        return self.state().backlog

    def moment(self) -> Moment:
        state = self.state()
        moment = self._moment
        if moment is None or moment.state is not state:
            moment = Moment(
                state,
                node_rows(state.nodes),
                totals(state.nodes, state.backlog),
                active_conditions(state),
            )
            self._moment = moment
        return moment

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
        """Add one point to the history (the dashboard's periodic job, on its own loop)."""
        state = self.state()
        return self.history.take(state.nodes, state.backlog, self.wall_clock())

    def explanation(self, task_id: str) -> PlacementExplanation | None:
        """Why a recent task submitted with ``explain`` went where it went."""
        return self.state().explanations.get(task_id)

    # -- tenants -----------------------------------------------------------

    def tenants(self) -> TenantsReport | None:
        return self.state().tenants

    # -- alerts ------------------------------------------------------------

    def active(self) -> list[ActiveCondition]:
        return self.moment().active

    def find_alert(self, alert_id: str) -> Alert | None:
        for alert in self.state().recent_alerts:
            if alert.message_id == alert_id:
                return alert
        return None

    def acknowledge(self, alert_id: str) -> bool:
        """Mark a recent alert seen; False when no recent alert has that id."""
        if self.find_alert(alert_id) is None:
            return False
        known = {alert.message_id for alert in self.state().recent_alerts}
        self.acknowledged = {seen for seen in self.acknowledged if seen in known}
        self.acknowledged.add(alert_id)
        self.acknowledgements += 1
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
            for alert in reversed(self.state().recent_alerts)
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
    "MonitorState",
    "Summary",
    "ThroughputOut",
    "active_conditions",
    "latest_tenants_report",
]
