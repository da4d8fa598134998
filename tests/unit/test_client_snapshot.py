"""``Client.snapshot`` and ``plan``: read the cluster, leave nothing behind."""

from __future__ import annotations

from boson.launcher import EmbeddedCluster
from boson.simulated_node import SimulatedNode
from boson_shared.contract.messages import ResourceVector
from boson_shared.settings import BosonSettings


async def test_snapshot_and_plan_leave_no_queue_behind() -> None:
    cluster = EmbeddedCluster(BosonSettings(namespace="snap"))
    try:
        await cluster.start_control_plane()
        await cluster.start(
            SimulatedNode(
                cluster.settings,
                cluster.transport(),
                cluster._codec(),
                node_id="n1",
                capacity=ResourceVector(cpu=500, memory=500),
                allocated=ResourceVector(cpu=350, memory=350),
            )
        )
        client = await cluster.client(client_id="c1")
        before = set(cluster.broker.queues())
        snapshot = await client.snapshot(timeout=5)
        assert [node.node_id for node in snapshot.nodes] == ["n1"]
        plan = await client.plan(client.resource_demand(100, 1000), timeout=5)
        assert plan.node_id == "n1"
        assert plan.status == "placed"
        assert plan.demand.cpu == 110
        assert set(cluster.broker.queues()) == before
        await client.close()
    finally:
        await cluster.stop()
