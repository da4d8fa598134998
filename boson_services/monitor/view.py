"""The monitor's live view of the cluster: liveness, overload, snapshots, tenants.

Pure state driven by heartbeats and a clock, so the rules (down after K
missed heartbeats, back when they resume — on probation if it had failed,
see :mod:`boson_shared.scheduling.probation` — overload only when sustained) are
tested without a broker. Liveness uses the monitor's own monotonic clock at
receipt, never the sender's timestamp: node clocks drift, the monitor's is
the one that decides.

Silence counts only while the monitor can hear. While its own connection is
down (:meth:`ClusterView.lost_contact`) it declares nobody down; once it is
back (:meth:`ClusterView.regained_contact`), silence counts from that
moment, not from each node's last heartbeat: a node that died during the
outage is declared down one ``down_after_s`` after the monitor hears again,
and a live one has that long to be heard. A pause of its own (a sweep later
than ``pause_limit_s`` after the one before: the event loop or the
monitor's publishing stalled) counts as one regular ``sweep_interval_s`` of
silence, not more: the heartbeats that waited unread through it are read
right after, and a monitor whose every sweep comes late still declares a
silent node down, later (docs/design.md, node liveness).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from boson_shared.contract.messages import Alert, ClusterSnapshot, NodeHeartbeat, NodeState
from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.scheduling.probation import Probation

logger = logging.getLogger(__name__)


@dataclass
class NodeRecord:
    heartbeat: NodeHeartbeat
    last_seen: float
    excused_at_seen: float = 0.0
    """The view's :attr:`ClusterView.excused_s` when this node was last heard."""
    alive: bool = True
    overloaded_since: float | None = None
    overload_alerted: bool = False


class ClusterView:
    """Nodes as the heartbeats describe them."""

    def __init__(
        self,
        *,
        down_after_s: float,
        overload_threshold: float = 0.9,
        overload_sustain_s: float = 10.0,
        probation: Probation | None = None,
        pause_limit_s: float = math.inf,
        sweep_interval_s: float = 0.0,
    ) -> None:
        self.down_after_s = down_after_s
        self.pause_limit_s = pause_limit_s
        """A gap between two sweeps longer than this is a pause of the monitor's own."""
        self.sweep_interval_s = sweep_interval_s
        """The regular gap between two sweeps: what a pause counts as silence."""
        self.probation = probation if probation is not None else Probation()
        """Which returning nodes take no new work yet (``Probation(0, 0)``: none)."""
        self.overload_threshold = overload_threshold
        self.overload_sustain_s = overload_sustain_s
        self.nodes: dict[str, NodeRecord] = {}
        self.membership_changed = False
        """Set when a node joined, left or returned; cleared by :meth:`snapshot`."""
        self._tenants: TenantsReport | None = None
        self.deaf = False
        """True while the monitor's connection is down: no silence counts."""
        self.hearing_since = -math.inf
        """When the monitor last began to hear again; silence counts from here at the earliest."""
        self.excused_s = 0.0
        """The monitor's own pauses so far, each less a regular sweep interval:
        time that counts as nobody's silence."""
        self._excused_at_hearing = 0.0
        self._last_sweep: float | None = None

    def lost_contact(self, now: float) -> None:
        """The monitor's own connection dropped: heartbeats sent now go unheard."""
        if not self.deaf:
            logger.warning("monitor cut off from the broker: no node is declared down until back")
        self.deaf = True

    def regained_contact(self, now: float) -> None:
        """The monitor consumes again: every node's silence counts from ``now``."""
        self.deaf = False
        self.hearing_since = now
        self._excused_at_hearing = self.excused_s
        logger.info(
            "monitor hears again: a node silent since is declared down after %.1fs",
            self.down_after_s,
        )

    def silent_for(self, record: NodeRecord, now: float) -> float:
        """How long ``record``'s node has been silent while the monitor could hear it:
        since its last heartbeat or the monitor's reconnect, whichever is later,
        less the monitor's own pauses since (each less a regular sweep interval)."""
        if record.last_seen >= self.hearing_since:
            return now - record.last_seen - (self.excused_s - record.excused_at_seen)
        return now - self.hearing_since - (self.excused_s - self._excused_at_hearing)

    def observe(self, heartbeat: NodeHeartbeat, now: float) -> list[Alert]:
        """Take a heartbeat in; returns alerts it causes (a node back up)."""
        record = self.nodes.get(heartbeat.node_id)
        if record is None:
            self.nodes[heartbeat.node_id] = NodeRecord(heartbeat, now, self.excused_s)
            self.membership_changed = True
            return []
        restarted = heartbeat.started_at != record.heartbeat.started_at
        if heartbeat.seq <= record.heartbeat.seq and not restarted:
            return []  # late or repeated: the newer one already counted
        record.heartbeat = heartbeat
        record.last_seen = now
        record.excused_at_seen = self.excused_s
        if record.alive:
            return []
        record.alive = True
        self.membership_changed = True
        until = self.probation.returned(heartbeat.node_id, now, len(self.nodes))
        detail = f"node {heartbeat.node_id} heartbeats again"
        if until > now:
            detail += f"; on probation (no new work) for {until - now:.0f}s"
        return [Alert(reason="node-up", severity="info", node_id=heartbeat.node_id, detail=detail)]

    def sweep(self, now: float) -> list[Alert]:
        """Apply the clock: nodes that went quiet are down; sustained overload alerts.

        Quiet means silent while the monitor could hear (:meth:`silent_for`):
        nobody is declared down while it is cut off, and a sweep that comes
        more than ``pause_limit_s`` after the previous one finds the monitor
        just back from a pause of its own: the gap counts as one regular
        sweep interval of silence, the rest as nobody's. Not none of it:
        heartbeats that waited unread through the pause are read right after
        it, and a monitor whose every sweep comes late must still, later,
        declare a silent node down.
        """
        previous, self._last_sweep = self._last_sweep, now
        if previous is not None and now - previous > self.pause_limit_s:
            excess = now - previous - self.sweep_interval_s
            logger.warning(
                "monitor paused %.1fs between sweeps: %.1fs of it is not counted as silence",
                now - previous,
                excess,
            )
            self.excused_s += excess
        alerts: list[Alert] = []
        for node_id, record in self.nodes.items():
            silent = self.silent_for(record, now)
            if record.alive and not self.deaf and silent > self.down_after_s:
                record.alive = False
                self.probation.failed(node_id, now)
                record.overloaded_since = None
                record.overload_alerted = False
                self.membership_changed = True
                alerts.append(
                    Alert(
                        reason="node-down",
                        severity="critical",
                        node_id=node_id,
                        detail=(
                            f"node {node_id} missed heartbeats for "
                            f"{silent:.1f}s (limit {self.down_after_s:.1f}s)"
                        ),
                    )
                )
            elif record.alive:
                alert = self._check_overload(record, now)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def _check_overload(self, record: NodeRecord, now: float) -> Alert | None:
        beat = record.heartbeat
        load = max(beat.measured_cpu, beat.measured_memory)
        if load < self.overload_threshold:
            record.overloaded_since = None
            record.overload_alerted = False
            return None
        if record.overloaded_since is None:
            record.overloaded_since = now
        if record.overload_alerted or now - record.overloaded_since < self.overload_sustain_s:
            return None
        record.overload_alerted = True
        return Alert(
            reason="overload",
            severity="warning",
            node_id=beat.node_id,
            value=load,
            detail=(
                f"node {beat.node_id} measured at {load:.0%} for "
                f"{now - record.overloaded_since:.0f}s"
            ),
        )

    def observe_tenants(self, report: TenantsReport) -> bool:
        """Keep ``report`` if it is newer than the one held; whether it was.

        Of one balancer, a higher ``seq`` is newer (a redelivered older
        report is not); another balancer's report is taken as it comes: it
        speaks because it became the active one.
        """
        held = self._tenants
        if held is not None and held.balancer_id == report.balancer_id and report.seq <= held.seq:
            return False
        self._tenants = report
        return True

    def tenants(self) -> TenantsReport | None:
        """The latest report of how the tenants share the pool (None before the first)."""
        return self._tenants

    def alive_nodes(self) -> list[str]:
        return sorted(node_id for node_id, record in self.nodes.items() if record.alive)

    def snapshot(
        self, monitor_id: str, seq: int, backlog: int, taken_at: float, now: float
    ) -> ClusterSnapshot:
        """The view as a message; ``now`` is the monitor's clock (probation ends on it)."""
        self.membership_changed = False
        return ClusterSnapshot(
            monitor_id=monitor_id,
            seq=seq,
            taken_at=taken_at,
            nodes=tuple(self.node_states(now)),
            backlog=backlog,
        )

    def node_states(self, now: float) -> list[NodeState]:
        """Every node as a snapshot shows it, without changing the view."""
        on_probation = self.probation.on_probation(now)
        states = []
        for node_id in sorted(self.nodes):
            record = self.nodes[node_id]
            beat = record.heartbeat
            states.append(
                NodeState(
                    node_id=node_id,
                    alive=record.alive,
                    on_probation=record.alive and node_id in on_probation,
                    capacity=beat.capacity,
                    allocated=beat.allocated,
                    slots=beat.slots,
                    running=beat.running,
                    free_slots=beat.free_slots,
                    measured_cpu=beat.measured_cpu,
                    measured_memory=beat.measured_memory,
                    last_heartbeat_at=beat.sent_at,
                    gpus=beat.gpus,
                )
            )
        return states


__all__ = ["ClusterView", "NodeRecord"]
