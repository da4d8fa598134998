"""Connections between the services and the broker cut and stalled at random.

Every service reaches RabbitMQ through :class:`ChaosProxy`; for CHAOS_S
seconds the proxy aborts or freezes random connections while tasks stream
in. The client connects directly: it is the witness, not the subject.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from yarl import URL

from boson.client import TaskHandle, TaskRequest
from tests.reliability.harness import (
    CountingClient,
    assert_exactly_once,
    counting_client,
    gather_results,
    health,
    record,
    start_pipeline,
    wait_for_nodes,
    wait_until,
)
from tests.support.chaos_proxy import ChaosProxy
from tests.support.cluster import ProcessCluster

CHAOS_S = 30.0
BATCH = 10
INTERVAL_S = 0.5


async def stream(client: CountingClient, handles: list[TaskHandle], until: float) -> None:
    number = 0
    while time.monotonic() < until:
        handles.extend(
            await client.submit_many(
                [
                    TaskRequest("burn", params={"seconds": 0.005})
                    if i % 2
                    else TaskRequest("noop", params={"echo": number * BATCH + i})
                    for i in range(BATCH)
                ]
            )
        )
        number += 1
        await asyncio.sleep(INTERVAL_S)


@pytest.mark.broker
@pytest.mark.timeout(180)
async def test_run_survives_cut_and_stalled_connections(
    cluster: ProcessCluster, amqp_url: str
) -> None:
    broker = URL(amqp_url)
    proxy = ChaosProxy(broker.host or "127.0.0.1", broker.port or 5672, seed=7)
    await proxy.start()
    cluster.amqp_url = str(broker.with_port(proxy.port))
    client: CountingClient | None = None
    try:
        await start_pipeline(cluster, ["cut-1", "cut-2"], "--slots", "4")
        client = await counting_client(cluster, url=amqp_url)
        await wait_for_nodes(client, 2)
        handles: list[TaskHandle] = []
        started = time.monotonic()
        producer = asyncio.create_task(stream(client, handles, started + CHAOS_S))
        stats = await proxy.chaos(CHAOS_S)
        await producer
        chaos_over = time.monotonic()

        async def all_connected() -> bool:
            for name in cluster.processes:
                if (await health(cluster, name)).get("broker_connected") is not True:
                    return False
            return True

        reconnected_s = await wait_until(all_connected, timeout=30)
        results = await gather_results(client, handles, timeout=90)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        assert stats.drops >= 5, stats
        assert stats.stalls >= 5, stats
        record(
            "connections_cut",
            delivery.as_dict()
            | {
                "chaos_s": CHAOS_S,
                "connections_cut": stats.drops,
                "stalls": stats.stalls,
                "stalled_s_total": stats.stalled_s,
                "connections_accepted": stats.accepted,
                "all_reconnected_after_chaos_s": reconnected_s,
                "all_done_after_chaos_s": time.monotonic() - chaos_over,
            },
        )
    finally:
        if client is not None:
            await client.close()
        # In a thread: the proxy lives on this loop and must carry the goodbyes.
        await asyncio.to_thread(cluster.stop_all)
        await proxy.close()
