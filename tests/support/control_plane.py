"""The control plane in-process: monitor, scheduler and balancer, simulated nodes, clients.

The real services, each on its own connection (one transport per service, as
in production); :class:`~boson.simulated_node.SimulatedNode` s heartbeat and
answer assignments like executors. The ``plane`` fixture
(``tests/integration/conftest.py``) gives a test one, closed after it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from boson.client import Client
from boson.simulated_node import SimulatedNode
from boson_services.balancer.app import BalancerService
from boson_services.balancer.settings import BalancerSettings
from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_services.scheduler.app import SchedulerService
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import ResourceVector
from boson_shared.runtime.service import RunningService, Service, start_in_background, stop_all
from boson_shared.runtime.tap import Tap
from boson_shared.settings import BosonSettings
from tests.conftest import TrackingTransport, TransportFactory
from tests.support.waiting import until

HEARTBEAT_S = 0.2
MISSED = 3
SLOTS = 4
CREDIT_PER_SLOT = 16
CREDIT = SLOTS * CREDIT_PER_SLOT
CAPACITY = 10_000.0
TASKS = 200
WAIT = 15.0


@dataclass
class ControlPlane:
    """The three services, simulated nodes and a client on one namespace."""

    factory: TransportFactory
    namespace: str
    codec: EnvelopeCodec = field(default_factory=lambda: EnvelopeCodec(Keyring.ephemeral()))
    running: list[RunningService] = field(default_factory=list)
    nodes: dict[str, SimulatedNode] = field(default_factory=dict)
    taps: list[Tap] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    monitor: MonitorService | None = None
    scheduler: SchedulerService | None = None
    balancer: BalancerService | None = None
    admin: TrackingTransport | None = None

    def base(self, instance: str) -> dict[str, Any]:
        return {"namespace": self.namespace, "instance_id": instance, "drain_grace_s": 0.5}

    async def start(self, service: Service) -> None:
        running = await start_in_background(service, timeout=WAIT)
        self.running.append(running)

    async def start_control_plane(
        self, balancer: dict[str, Any] | None = None, **monitor: Any
    ) -> None:
        self.admin = await self.factory()
        self.monitor = MonitorService(
            MonitorSettings(
                **self.base("mon"),
                heartbeat_interval_s=HEARTBEAT_S,
                missed_heartbeats=MISSED,
                snapshot_interval_s=HEARTBEAT_S,
                queue_poll_interval_s=0.3,
                **monitor,
            ),
            await self.factory(),
            self.codec,
        )
        self.scheduler = SchedulerService(
            SchedulerSettings(**self.base("sched"), strategy="binpack"),
            await self.factory(),
            self.codec,
        )
        self.balancer = BalancerService(
            BalancerSettings(
                **self.base("bal"),
                **{
                    "credit_per_slot": CREDIT_PER_SLOT,
                    "retarget_after_s": 0.5,
                    "report_interval_s": 0.3,
                    **(balancer or {}),
                },
            ),
            await self.factory(),
            self.codec,
        )
        for service in (self.monitor, self.scheduler, self.balancer):
            await self.start(service)

    async def start_node(
        self, node_id: str, allocated: float, *, hold_s: float, prefetch_factor: int
    ) -> SimulatedNode:
        node = SimulatedNode(
            BosonSettings(**self.base(node_id)),
            await self.factory(),
            self.codec,
            node_id=node_id,
            capacity=ResourceVector(cpu=CAPACITY, memory=CAPACITY),
            allocated=ResourceVector(cpu=allocated, memory=allocated),
            slots=SLOTS,
            measured=0.2,
            hold_s=hold_s,
            heartbeat_interval_s=HEARTBEAT_S,
            prefetch_factor=prefetch_factor,
        )
        await self.start(node)
        self.nodes[node_id] = node
        return node

    async def client(self) -> Client:
        client = Client(
            BosonSettings(**self.base("client")),
            await self.factory(),
            self.codec,
            client_id=f"cp-client-{len(self.clients)}",
        )
        await client.start()
        self.clients.append(client)
        return client

    async def tap(self, name: str, exchange: str, key: str) -> Tap:
        assert self.admin is not None
        tap = Tap(self.admin, self.codec, f"{self.namespace}.tap-{name}", [(exchange, key)])
        await tap.start()
        self.taps.append(tap)
        return tap

    async def until_scheduler_knows(self, count: int) -> None:
        scheduler = self.scheduler
        assert scheduler is not None
        await until(lambda: len(scheduler.handlers.table) == count, f"scheduler sees {count}", WAIT)

    async def depth(self, queue: str) -> int:
        assert self.admin is not None
        return await self.admin.queue_depth(queue)

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        for tap in self.taps:
            with contextlib.suppress(Exception):
                await tap.close()
        await stop_all(self.running, timeout=10)


__all__ = ["CREDIT", "TASKS", "WAIT", "ControlPlane"]
