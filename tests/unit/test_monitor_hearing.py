"""The monitor declares nodes down only for silence it could have heard.

Its own outage is not the nodes' silence: while cut off it declares nobody
down, and once back silence counts from that moment, so a node that died
meanwhile is declared down one timeout after the monitor hears again, and a
live one has that long to be heard. A pause of its own between sweeps counts
as one regular sweep interval of silence, so a monitor whose every sweep is
late still declares a silent node down.
"""

from __future__ import annotations

import math

import pytest

from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_services.monitor.view import ClusterView
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import Alert
from tests.support.fakes import Clock
from tests.support.monitor import heartbeat, monitor_state

DOWN_AFTER = 3.0
"""Three missed heartbeats of one second."""


def down(alerts: list[Alert]) -> list[str]:
    return [a.node_id or "" for a in alerts if a.reason == "node-down"]


def two_nodes(pause_limit_s: float = math.inf) -> ClusterView:
    """A view that heard nodes a and b at time 0 (sweeps due every second)."""
    cluster = ClusterView(
        down_after_s=DOWN_AFTER, pause_limit_s=pause_limit_s, sweep_interval_s=1.0
    )
    cluster.observe(heartbeat("a", seq=1), now=0.0)
    cluster.observe(heartbeat("b", seq=1), now=0.0)
    return cluster


def test_nobody_is_declared_down_while_the_monitor_is_cut_off() -> None:
    cluster = two_nodes()
    cluster.lost_contact(now=0.5)
    for now in (1.0, 3.5, 10.0, 60.0):
        assert cluster.sweep(now) == []
    assert cluster.alive_nodes() == ["a", "b"]


def test_silence_counts_from_the_reconnect_not_from_the_last_heartbeat_heard() -> None:
    cluster = two_nodes()
    cluster.lost_contact(now=0.5)
    cluster.regained_contact(now=10.0)
    # Both were silent for ten seconds, all of it unheard: neither is down.
    assert cluster.sweep(10.0) == []
    assert cluster.sweep(10.0 + DOWN_AFTER - 0.01) == []
    # a heartbeats again; b died during the outage and stays silent.
    cluster.observe(heartbeat("a", seq=2), now=10.4)
    alerts = cluster.sweep(10.0 + DOWN_AFTER + 0.01)
    assert down(alerts) == ["b"]
    assert "missed heartbeats for 3.0s" in alerts[0].detail
    assert cluster.alive_nodes() == ["a"]


def test_a_node_heard_since_the_reconnect_counts_from_its_own_heartbeat() -> None:
    cluster = two_nodes()
    cluster.lost_contact(now=0.5)
    cluster.regained_contact(now=10.0)
    cluster.observe(heartbeat("a", seq=2), now=11.0)
    cluster.observe(heartbeat("b", seq=2), now=11.0)
    assert cluster.sweep(11.0 + DOWN_AFTER - 0.01) == []
    assert down(cluster.sweep(11.0 + DOWN_AFTER + 0.01)) == ["a", "b"]


def test_a_pause_of_the_monitors_own_is_not_the_nodes_silence() -> None:
    cluster = two_nodes(pause_limit_s=2.0)
    cluster.observe(heartbeat("a", seq=2), now=0.9)
    assert cluster.sweep(1.0) == []
    # The monitor's loop stood still for nine seconds: heartbeats waited
    # unread. The sweep that ends the pause counts it as one regular
    # interval, and declares nobody down...
    assert cluster.sweep(10.0) == []
    assert cluster.silent_for(cluster.nodes["a"], 10.0) == pytest.approx(1.1)
    # ...the heartbeats read right after it are a's; b stays silent, and is
    # down once its silence outside the pause passes the timeout.
    cluster.observe(heartbeat("a", seq=3), now=10.1)
    assert cluster.sweep(11.0) == []
    assert down(cluster.sweep(11.01)) == ["b"]
    assert cluster.alive_nodes() == ["a"]


def test_a_monitor_whose_every_sweep_is_late_still_declares_a_silent_node_down() -> None:
    cluster = two_nodes(pause_limit_s=2.0)
    alerts: list[str] = []
    now = 0.0
    assert cluster.sweep(now) == []
    while now < 30.0 and not alerts:
        now += 2.5  # every sweep a pause of the monitor's own
        cluster.observe(heartbeat("a", seq=int(now * 10)), now=now - 0.1)
        alerts = down(cluster.sweep(now))
    assert alerts == ["b"]
    assert now == 10.0  # silent for four regular intervals' worth: 0 → 2.5 → ... → 10.0
    assert cluster.alive_nodes() == ["a"]


def test_regular_sweeps_still_declare_a_silent_node_down_on_time() -> None:
    cluster = two_nodes(pause_limit_s=2.0)
    for now in (1.0, 2.0, 3.0):
        cluster.observe(heartbeat("a", seq=int(now) + 1), now=now)
        assert cluster.sweep(now) == []
    assert down(cluster.sweep(DOWN_AFTER + 0.01)) == ["b"]


def test_a_fresh_monitor_gives_every_node_a_full_timeout() -> None:
    cluster = ClusterView(down_after_s=DOWN_AFTER, pause_limit_s=2.0)
    assert cluster.sweep(1_000.0) == []
    cluster.observe(heartbeat("a", seq=40), now=1_000.9)
    for now in (1_001.0, 1_002.0, 1_003.0, 1_000.9 + DOWN_AFTER - 0.01):
        assert cluster.sweep(now) == []
    assert down(cluster.sweep(1_000.9 + DOWN_AFTER + 0.01)) == ["a"]


def test_the_handlers_pass_connection_changes_to_the_view_at_their_clock() -> None:
    handlers, clock = monitor_state(nodes=2)
    clock.now += 1.0
    handlers.on_connection(False)
    clock.now += 30.0
    emits = handlers.tick()
    assert [e.message for e in emits if isinstance(e.message, Alert)] == []
    handlers.on_connection(True)
    assert handlers.view.hearing_since == clock.now
    clock.now += DOWN_AFTER + 0.01
    alerts = [e.message for e in handlers.tick() if isinstance(e.message, Alert)]
    assert sorted(down(alerts)) == ["node-0000", "node-0001"]


async def test_the_monitor_service_hears_its_transport_drop_and_recover() -> None:
    transport = MemoryTransport(MemoryBroker())
    codec = EnvelopeCodec(Keyring.ephemeral())
    monitor = MonitorService(MonitorSettings(record=False), transport, codec)
    clock = Clock(50.0)
    monitor.handlers.clock = clock
    heard: list[bool] = []
    transport.watch_connection(heard.append)
    await transport.connect()
    await transport.drop()
    assert heard == [False, True]
    assert monitor.handlers.view.hearing_since == 50.0
    assert not monitor.handlers.view.deaf
    expected = monitor.monitor_settings.snapshot_interval_s
    expected += monitor.monitor_settings.heartbeat_interval_s
    assert monitor.handlers.view.pause_limit_s == expected
    assert monitor.handlers.view.sweep_interval_s == monitor.monitor_settings.snapshot_interval_s
