"""The monitor's cluster view and handlers, driven by heartbeats and a fake clock."""

from __future__ import annotations

from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.view import ClusterView
from boson_shared.contract.messages import (
    Alert,
    BalancerBacklog,
    ClusterSnapshot,
    NodeHeartbeat,
    ResourceVector,
    TaskFailure,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import RK_SNAPSHOT, Names
from boson_shared.scheduling.probation import PROBATION_S

INTERVAL = 1.0
K = 3
STARTED = 1_000.0


def beat(node: str, seq: int, *, load: float = 0.2, started_at: float = STARTED) -> NodeHeartbeat:
    return NodeHeartbeat(
        node_id=node,
        seq=seq,
        started_at=started_at,
        capacity=ResourceVector(cpu=500, memory=500),
        allocated=ResourceVector(cpu=100 * seq % 500, memory=50),
        slots=4,
        running=1,
        free_slots=3,
        measured_cpu=load,
        measured_memory=min(load, 0.5),
    )


def view(sustain: float = 10.0) -> ClusterView:
    return ClusterView(
        down_after_s=INTERVAL * K, overload_threshold=0.9, overload_sustain_s=sustain
    )


def changed(cluster: ClusterView) -> bool:
    return cluster.membership_changed


def reasons(alerts: list[Alert]) -> list[tuple[str, str | None]]:
    return [(a.reason, a.node_id) for a in alerts]


def test_a_node_is_down_only_after_k_missed_heartbeats() -> None:
    cluster = view()
    assert cluster.observe(beat("a", 1), now=0.0) == []
    assert cluster.alive_nodes() == ["a"]
    # K - 1 missed beats and a bit: still alive.
    assert cluster.sweep(now=INTERVAL * K - 0.01) == []
    assert cluster.alive_nodes() == ["a"]
    alerts = cluster.sweep(now=INTERVAL * K + 0.01)
    assert reasons(alerts) == [("node-down", "a")]
    assert alerts[0].severity == "critical"
    assert cluster.alive_nodes() == []
    assert cluster.sweep(now=100.0) == []  # said once


def test_regular_heartbeats_keep_a_node_alive() -> None:
    cluster = view()
    for seq in range(1, 20):
        cluster.observe(beat("a", seq), now=seq * INTERVAL)
        assert cluster.sweep(now=seq * INTERVAL + 0.5) == []
    assert cluster.alive_nodes() == ["a"]


def test_a_down_node_is_back_when_heartbeats_resume() -> None:
    cluster = view()
    cluster.observe(beat("a", 1), now=0.0)
    cluster.sweep(now=10.0)
    cluster.snapshot("m", 1, backlog=0, taken_at=0.0, now=0.0)
    assert not changed(cluster)
    alerts = cluster.observe(beat("a", 2), now=11.0)
    assert reasons(alerts) == [("node-up", "a")]
    assert cluster.alive_nodes() == ["a"]
    assert changed(cluster)
    assert cluster.sweep(now=12.0) == []


def test_late_or_repeated_heartbeats_do_not_count_but_a_restart_does() -> None:
    cluster = view()
    cluster.observe(beat("a", 5), now=0.0)
    cluster.observe(beat("a", 4), now=2.9)  # out of order: ignored
    assert reasons(cluster.sweep(now=3.5)) == [("node-down", "a")]
    # The node restarted: its seq starts again at 1, with a new start time.
    alerts = cluster.observe(beat("a", 1, started_at=STARTED + 60), now=4.0)
    assert reasons(alerts) == [("node-up", "a")]


def test_liveness_uses_the_monitors_clock_not_the_senders() -> None:
    cluster = view()
    skewed = beat("a", 1).model_copy(update={"sent_at": 0.0})  # a node clock far behind
    cluster.observe(skewed, now=50.0)
    assert cluster.sweep(now=51.0) == []


def test_overload_alerts_only_when_sustained_and_once() -> None:
    cluster = view(sustain=5.0)
    cluster.observe(beat("a", 1, load=0.95), now=0.0)
    assert cluster.sweep(now=0.0) == []  # starts the clock
    cluster.observe(beat("a", 2, load=0.95), now=1.0)
    assert cluster.sweep(now=2.0) == []
    cluster.observe(beat("a", 3, load=0.96), now=2.5)
    assert cluster.sweep(now=4.9) == []
    alerts = cluster.sweep(now=5.1)
    assert reasons(alerts) == [("overload", "a")]
    assert alerts[0].value == 0.96
    cluster.observe(beat("a", 4, load=0.97), now=5.5)
    assert cluster.sweep(now=6.0) == []  # already alerted


def test_a_brief_spike_is_not_overload_and_the_clock_restarts() -> None:
    cluster = view(sustain=5.0)
    cluster.observe(beat("a", 1, load=0.95), now=0.0)
    cluster.sweep(now=0.0)
    cluster.observe(beat("a", 2, load=0.3), now=1.0)
    assert cluster.sweep(now=2.0) == []
    cluster.observe(beat("a", 3, load=0.95), now=2.5)
    assert cluster.sweep(now=2.5) == []
    cluster.observe(beat("a", 4, load=0.95), now=5.0)
    assert cluster.sweep(now=6.0) == []  # 3.5 s since the spike began again
    cluster.observe(beat("a", 5, load=0.95), now=7.5)
    assert reasons(cluster.sweep(now=7.6)) == [("overload", "a")]


def test_snapshot_carries_every_node_with_liveness_sorted() -> None:
    cluster = view()
    cluster.observe(beat("b", 1), now=0.0)
    cluster.observe(beat("a", 1), now=2.0)
    cluster.sweep(now=3.5)
    snapshot = cluster.snapshot("mon", 7, backlog=3, taken_at=99.0, now=99.0)
    assert [(n.node_id, n.alive) for n in snapshot.nodes] == [("a", True), ("b", False)]
    assert (snapshot.monitor_id, snapshot.seq, snapshot.backlog) == ("mon", 7, 3)
    assert snapshot.nodes[0].capacity == ResourceVector(cpu=500, memory=500)
    assert snapshot.nodes[0].slots == 4


def handlers(clock: list[float]) -> MonitorHandlers:
    return MonitorHandlers(
        view(),
        MonitorMetrics(),
        Names("mon-test"),
        "mon",
        backlog_alert_threshold=10,
        clock=lambda: clock[0],
    )


def gauge(monitor: MonitorHandlers, name: str, node: str) -> float | None:
    """A per-node series as a scrape reads it."""
    return monitor.metrics.registry.get_sample_value(name, {"node": node})


def test_handlers_snapshot_on_membership_change_and_every_tick() -> None:
    clock = [0.0]
    monitor = handlers(clock)
    emits = monitor.on_heartbeat(beat("a", 1))
    assert [e.route.routing_key for e in emits] == [RK_SNAPSHOT]
    assert monitor.on_heartbeat(beat("a", 2)) == []
    clock[0] = 10.0
    emits = monitor.tick()
    kinds = [type(e.message).__name__ for e in emits]
    assert kinds == ["Alert", "ClusterSnapshot"]
    assert emits[0].route.routing_key == "alert.node-down"
    snapshot = emits[1].message
    assert isinstance(snapshot, ClusterSnapshot)
    assert [n.alive for n in snapshot.nodes] == [False]
    assert gauge(monitor, "boson_node_alive", "a") == 0


def test_a_thousand_nodes_joining_at_once_make_a_few_snapshots_not_one_each() -> None:
    clock = [0.0]
    monitor = handlers(clock)
    snapshots = 0
    for number in range(1000):
        clock[0] = number * 0.001  # a thousand joins within a second
        emits = monitor.on_heartbeat(beat(f"n{number:04d}", 1))
        snapshots += sum(isinstance(e.message, ClusterSnapshot) for e in emits)
    assert 1 <= snapshots <= 5  # one per MEMBERSHIP_SNAPSHOT_GAP_S at most
    clock[0] = 1.5
    (last,) = [e.message for e in monitor.tick() if isinstance(e.message, ClusterSnapshot)]
    assert isinstance(last, ClusterSnapshot)
    assert len(last.nodes) == 1000  # the tick carries those that joined since


def test_handlers_alert_on_a_growing_backlog_once_until_it_clears() -> None:
    monitor = handlers([0.0])
    assert monitor.on_backlog(BalancerBacklog(pending=2, held=3)) == []
    first = monitor.on_backlog(BalancerBacklog(pending=5, held=6))
    assert [e.route.routing_key for e in first] == ["alert.backlog"]
    assert monitor.on_backlog(BalancerBacklog(pending=50, held=60)) == []
    assert monitor.on_backlog(BalancerBacklog(pending=0, held=0)) == []
    assert len(monitor.on_backlog(BalancerBacklog(pending=10, held=0))) == 1


def test_handlers_count_placements_and_results() -> None:
    monitor = handlers([0.0])
    task = TaskSubmitted(task_id="t1", handler="noop", reply_to="c", submitted_at=100.0)
    demand = ResourceVector(cpu=1)
    monitor.on_placed(TaskPlaced(task=task, demand=demand, node_id="a", strategy="binpack"))
    monitor.on_placed(TaskPlaced(task=task, demand=demand, node_id=None, strategy="binpack"))
    ok = TaskResult(
        task_id="t1", handler="noop", status="succeeded", reply_to="c", submitted_at=100.0
    )
    failed = ok.model_copy(
        update={"status": "failed", "error": TaskFailure(error_type="E", message="m")}
    )
    for result in (ok, failed, ok):
        monitor.on_result(result)
    metrics = monitor.metrics
    assert metrics.tasks_placed._value.get() == 1
    assert metrics.tasks_pending._value.get() == 1
    assert metrics.tasks_completed._value.get() == 2
    assert metrics.tasks_failed._value.get() == 1


def ten_nodes() -> ClusterView:
    """Ten nodes beating at t = 0: one of them may be on probation (⌊0.1 × 10⌋)."""
    cluster = view()
    for node in "abcdefghij":
        cluster.observe(beat(node, 1), now=0.0)
    return cluster


def probation_of(snapshot: ClusterSnapshot) -> dict[str, bool]:
    return {n.node_id: n.on_probation for n in snapshot.nodes if n.on_probation or not n.alive}


def test_a_node_back_after_failing_is_on_probation_then_trusted() -> None:
    cluster = ten_nodes()
    for node in "bcdefghij":
        cluster.observe(beat(node, 2), now=3.0)
    assert reasons(cluster.sweep(now=3.5)) == [("node-down", "a")]
    (alert,) = cluster.observe(beat("a", 2), now=10.0)
    assert "on probation (no new work) for 3600s" in alert.detail
    # Alive, counted, not offered new work: the scheduler and balancer read on_probation.
    during = cluster.snapshot("m", 1, backlog=0, taken_at=0.0, now=10.0 + 3599.0)
    assert probation_of(during) == {"a": True}
    assert cluster.alive_nodes() == list("abcdefghij")
    after = cluster.snapshot("m", 2, backlog=0, taken_at=0.0, now=10.0 + 3600.0)
    assert probation_of(after) == {}


def test_a_restart_without_missed_heartbeats_is_no_failure() -> None:
    cluster = ten_nodes()
    alerts = cluster.observe(beat("a", 1, started_at=STARTED + 60), now=1.0)
    assert alerts == []
    assert probation_of(cluster.snapshot("m", 1, backlog=0, taken_at=0.0, now=1.0)) == {}


def test_in_a_small_cluster_a_returning_node_takes_work_at_once() -> None:
    cluster = view()
    cluster.observe(beat("a", 1), now=0.0)
    cluster.sweep(now=10.0)
    (alert,) = cluster.observe(beat("a", 2), now=11.0)
    assert "probation" not in alert.detail
    assert probation_of(cluster.snapshot("m", 1, backlog=0, taken_at=0.0, now=11.0)) == {}


def test_handlers_publish_probation_in_the_snapshot_and_the_gauge() -> None:
    clock = [0.0]
    monitor = handlers(clock)
    for node in "abcdefghij":
        monitor.on_heartbeat(beat(node, 1))
    clock[0] = 3.0
    for node in "bcdefghij":
        monitor.on_heartbeat(beat(node, 2))
    clock[0] = 3.5
    monitor.tick()  # a is down
    clock[0] = 4.0
    emits = monitor.on_heartbeat(beat("a", 2))
    snapshot = next(e.message for e in emits if isinstance(e.message, ClusterSnapshot))
    assert [n.node_id for n in snapshot.nodes if n.on_probation] == ["a"]
    assert gauge(monitor, "boson_node_on_probation", "a") == 1
    assert gauge(monitor, "boson_node_on_probation", "b") == 0
    clock[0] = 4.0 + PROBATION_S  # its probation over, the next scrape says so
    assert gauge(monitor, "boson_node_on_probation", "a") == 0
