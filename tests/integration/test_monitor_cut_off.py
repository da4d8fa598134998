"""A monitor cut off from RabbitMQ does not declare the nodes it could not hear down.

As when the broker node they were connected to dies: the monitor and the
nodes each reach RabbitMQ through a :class:`ChaosProxy`, and both proxies cut
their connections (and refuse new ones) for longer than a heartbeat timeout,
during which one node stops for good. The monitor's link comes back first;
the nodes' a little later, as an executor's reconnect may. The live nodes must
never be declared down, and the stopped one must be, one timeout after the
monitor hears again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from yarl import URL

from boson.simulated_node import SimulatedNode
from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import ResourceVector
from boson_shared.runtime.service import RunningService, start_in_background, stop_all
from boson_shared.settings import BosonSettings
from tests.conftest import Declared, TrackingTransport
from tests.support.chaos_proxy import ChaosProxy
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

HEARTBEAT_S = 0.2
MISSED = 6
DOWN_AFTER_S = HEARTBEAT_S * MISSED
OUTAGE_S = 2 * DOWN_AFTER_S
NODES_LATER_S = DOWN_AFTER_S / 2
"""How long after the monitor the nodes reconnect: after the monitor's first
sweeps, with time left to heartbeat within a timeout of its reconnect."""
SLACK_S = 1.0
"""Sweep interval, heartbeat interval and a loaded machine's scheduling delays."""
WAIT_S = 15.0


@dataclass
class Rig:
    amqp_url: str
    namespace: str
    declared: Declared
    monitor_link: ChaosProxy
    node_link: ChaosProxy
    codec: EnvelopeCodec = field(default_factory=lambda: EnvelopeCodec(Keyring.ephemeral()))
    running: list[RunningService] = field(default_factory=list)

    async def transport(self, link: ChaosProxy, label: str) -> TrackingTransport:
        url = URL(self.amqp_url).with_host("127.0.0.1").with_port(link.port)
        inner = AmqpTransport(
            str(url),
            connection_name=f"boson-test {self.namespace} {label}",
            confirm_timeout=WAIT_S,
            op_timeout=10,
            reconnect_interval=0.1,
        )
        transport = TrackingTransport(inner, self.declared, "amqp")
        await transport.connect()
        return transport

    async def monitor(self) -> MonitorService:
        monitor = MonitorService(
            MonitorSettings(
                namespace=self.namespace,
                instance_id="mon",
                record=False,
                heartbeat_interval_s=HEARTBEAT_S,
                missed_heartbeats=MISSED,
                snapshot_interval_s=HEARTBEAT_S,
                drain_grace_s=0.5,
            ),
            await self.transport(self.monitor_link, "monitor"),
            self.codec,
        )
        self.running.append(await start_in_background(monitor, timeout=WAIT_S))
        return monitor

    async def node(self, node_id: str) -> SimulatedNode:
        node = SimulatedNode(
            BosonSettings(namespace=self.namespace, instance_id=node_id, drain_grace_s=0.5),
            await self.transport(self.node_link, node_id),
            self.codec,
            node_id=node_id,
            capacity=ResourceVector(cpu=100, memory=100),
            allocated=ResourceVector(cpu=0, memory=0),
            heartbeat_interval_s=HEARTBEAT_S,
        )
        self.running.append(await start_in_background(node, timeout=WAIT_S))
        return node


@pytest.fixture
async def rig(amqp_url: str, namespace: str, declared: Declared) -> AsyncIterator[Rig]:
    broker = URL(amqp_url)
    links = [ChaosProxy(broker.host or "127.0.0.1", broker.port or 5672) for _ in range(2)]
    for link in links:
        await link.start()
    rig = Rig(amqp_url, namespace, declared, monitor_link=links[0], node_link=links[1])
    try:
        yield rig
    finally:
        for link in links:
            link.restore()
        await stop_all(rig.running, timeout=10)
        for link in links:
            await link.close()


def declared_down(monitor: MonitorService) -> list[str | None]:
    return [a.node_id for a in monitor.handlers.recent_alerts if a.reason == "node-down"]


async def test_live_nodes_outlast_the_monitors_outage_and_a_dead_one_is_found_after(
    rig: Rig,
) -> None:
    monitor = await rig.monitor()
    live = [await rig.node("live-1"), await rig.node("live-2")]
    doomed = await rig.node("doomed")
    view = monitor.handlers.view
    await wait_until(lambda: len(view.alive_nodes()) == 3, WAIT_S)

    rig.monitor_link.cut()
    rig.node_link.cut()
    await wait_until(lambda: view.deaf, WAIT_S)
    await asyncio.sleep(OUTAGE_S / 2)
    doomed.heartbeating = False  # dies while the monitor cannot hear it
    await asyncio.sleep(OUTAGE_S / 2)
    assert declared_down(monitor) == []  # nothing declared while cut off
    cut_off_until = view.hearing_since

    rig.monitor_link.restore()
    await wait_until(lambda: view.hearing_since > cut_off_until and not view.deaf, WAIT_S)
    back_at = view.hearing_since  # the monitor's clock: time.monotonic
    await asyncio.sleep(NODES_LATER_S)
    # Everyone silent for longer than a timeout, but not since the monitor is back.
    assert declared_down(monitor) == []
    rig.node_link.restore()
    await wait_until(lambda: "doomed" in declared_down(monitor), WAIT_S)
    found_after = time.monotonic() - back_at
    assert declared_down(monitor) == ["doomed"]
    assert DOWN_AFTER_S < found_after <= DOWN_AFTER_S + SLACK_S
    # The live ones heartbeat again and are never declared down.
    await asyncio.sleep(2 * DOWN_AFTER_S)
    assert declared_down(monitor) == ["doomed"]
    assert view.alive_nodes() == sorted(node.node_id for node in live)
