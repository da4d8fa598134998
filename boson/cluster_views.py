"""The client's views of the cluster: snapshots, tenants, demand, where placement would put it.

Part of :class:`~boson.client.Client`.
"""

from __future__ import annotations

from boson.task_handles import Plan
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import (
    ClusterSnapshot,
    Message,
    ResourceRequest,
    ResourceVector,
    new_id,
)
from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.contract.topology import RK_SNAPSHOT, RK_TENANTS, Names
from boson_shared.runtime.tap import Tap
from boson_shared.scheduling.demand import DemandModel
from boson_shared.scheduling.placement import Placer, Strategy
from boson_shared.scheduling.scores import DEFAULT_STRATEGY
from boson_shared.scheduling.table import GpuDevice, NodeTable


class ClusterViews:
    """:meth:`snapshot`, :meth:`tenants`, :meth:`resource_demand` and :meth:`plan` of
    :class:`~boson.client.Client`."""

    names: Names
    client_id: str
    _transport: Transport
    _codec: Codec
    _demand_model: DemandModel

    async def snapshot(self, timeout: float = 10.0) -> ClusterSnapshot:
        """The next cluster snapshot the monitor publishes."""
        snapshot = await self._next_event(RK_SNAPSHOT, ClusterSnapshot, "plan", timeout)
        assert isinstance(snapshot, ClusterSnapshot)
        return snapshot

    async def tenants(self, timeout: float = 10.0) -> TenantsReport:
        """The next report of how the tenants share the pool.

        The active balancer publishes one every
        ``BOSON_TENANTS_REPORT_INTERVAL_S`` (the monitor takes the same
        reports for its gauges and dashboard); ``TimeoutError`` if none comes
        within ``timeout``.
        """
        report = await self._next_event(RK_TENANTS, TenantsReport, "tenants", timeout)
        assert isinstance(report, TenantsReport)
        return report

    def resource_demand(
        self,
        complexity: float,
        data_size: float = 0.0,
        requests: ResourceRequest | None = None,
    ) -> ResourceVector:
        """The demand the scheduler would estimate for such a task (docs/design.md#demand)."""
        return self._demand_model.estimate(complexity, data_size, requests)

    async def _next_event(
        self, key: str, kind: type[Message], purpose: str, timeout: float
    ) -> Message:
        """The next message of ``kind`` published on the events exchange under ``key``."""
        queue = self.names.subscriber_queue(purpose, f"{self.client_id}-{new_id()[:6]}")
        tap = Tap(self._transport, self._codec, queue, [(self.names.events_exchange, key)])
        await tap.start()
        try:
            return await tap.wait_for(lambda m: isinstance(m, kind), timeout)
        finally:
            await tap.close()

    async def plan(
        self,
        demand: ResourceVector,
        *,
        strategy: Strategy = DEFAULT_STRATEGY,
        timeout: float = 10.0,
    ) -> Plan:
        """Where placement would put ``demand`` now, without submitting anything."""
        snapshot = await self.snapshot(timeout)
        table = NodeTable()
        for node in snapshot.nodes:
            table.upsert(
                node.node_id,
                node.capacity.as_tuple(),
                node.allocated.as_tuple(),
                node.alive,
                devices=[GpuDevice(g.model, g.memory_mib) for g in node.gpus] or None,
                device_allocated=[g.allocated_milli for g in node.gpus] or None,
            )
        placer = Placer(table, strategy)
        explanation = placer.explain(demand.as_tuple())
        # The table is this call's own copy: committing to it changes nothing real.
        placement = placer.place(demand.as_tuple())
        return Plan(demand, placement.node_id, placement.status, explanation)


__all__ = ["ClusterViews"]
