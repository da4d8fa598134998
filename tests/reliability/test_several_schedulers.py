"""Three schedulers and two balancers against two executors: no node is overcommitted.

Each scheduler places against the last snapshot plus its own reservations
and does not see the others' until the next snapshot, so together they put
more work on a node than it has room for. Each task asks for half a node's
cpu, and a node has four slots: credit alone (slots × credit per slot) would
let four or more of them onto one node at once. The balancer dispatches only
what fits, so no node ever holds more than its capacity — read from what
the executors themselves report in every heartbeat, tapped at the broker.
Every task completes once.
"""

from __future__ import annotations

import time

import pytest

from boson.client import TaskRequest
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.messages import NodeHeartbeat, ResourceRequest
from boson_shared.contract.topology import RK_ALL_HEARTBEATS
from boson_shared.runtime.tap import Tap
from tests.reliability.harness import (
    assert_exactly_once,
    counting_client,
    gather_results,
    record,
    wait_for_nodes,
)
from tests.support.cluster import ProcessCluster

NODES = ("ov-1", "ov-2")
CPU = 4.0
TASKS = 60
TASK_CPU = 2.0


@pytest.mark.broker
@pytest.mark.timeout(150)
async def test_three_schedulers_never_overcommit_a_node(cluster: ProcessCluster) -> None:
    cluster.start("monitor")
    for number in (1, 2, 3):
        cluster.start("scheduler", name=f"scheduler-{number}")
    for number in (1, 2):
        cluster.start("balancer", name=f"balancer-{number}")
    for node in NODES:
        cluster.start("executor", "--node-id", node, "--slots", "4", "--cpu", str(CPU), name=node)
    await cluster.wait_healthy()
    transport = AmqpTransport(cluster.amqp_url, connection_name="boson-test-heartbeats")
    await transport.connect()
    names = cluster.settings().names()
    tap = Tap(
        transport,
        EnvelopeCodec.from_settings(cluster.settings()),
        f"{cluster.namespace}.watch.heartbeats",
        [(names.events_exchange, RK_ALL_HEARTBEATS)],
    )
    await tap.start()
    client = await counting_client(cluster)
    try:
        await wait_for_nodes(client, len(NODES))
        started = time.monotonic()
        handles = await client.submit_many(
            [
                TaskRequest(
                    "burn",
                    params={"seconds": 0.1},
                    requests=ResourceRequest(cpu=TASK_CPU, memory=1.0),
                )
                for _ in range(TASKS)
            ]
        )
        results = await gather_results(client, handles, timeout=120)
        run_s = time.monotonic() - started
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        beats = [m for m in tap.messages if isinstance(m, NodeHeartbeat)]
        peak = {
            node: max((b.allocated.cpu for b in beats if b.node_id == node), default=0.0)
            for node in NODES
        }
        busy = [b for b in beats if b.allocated.cpu > 0]
        assert busy, "no heartbeat showed a node holding work"
        assert all(value <= CPU + 1e-6 for value in peak.values()), peak
        record(
            "several_schedulers_no_overcommit",
            delivery.as_dict()
            | {
                "schedulers": 3,
                "balancers": 2,
                "node_cpu": CPU,
                "task_cpu": TASK_CPU,
                "peak_allocated_cpu": peak,
                "heartbeats_seen": len(beats),
                "run_s": run_s,
            },
        )
    finally:
        await client.close()
        await tap.close()
        await transport.close()
