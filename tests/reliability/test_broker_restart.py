"""``rabbitmqctl stop_app`` / ``start_app`` mid-run: every service reconnects by itself.

The broker is shared with other engineers' tests, so the outage is short and
``start_app`` runs in a ``finally``, followed by a wait for a real AMQP
connection (not just an open port).
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest

from boson.client import TaskRequest
from tests.conftest import AmqpBroker
from tests.reliability.harness import (
    assert_exactly_once,
    gather_results,
    health,
    record,
    running_pipeline,
    wait_until,
)
from tests.support.cluster import ProcessCluster

TASKS_BEFORE = 300
TASKS_AFTER = 100
DOWN_S = 3.0
RECONNECT_LIMIT_S = 30.0


async def amqp_answers(url: str, timeout: float) -> float:
    """Seconds until a real AMQP connection and channel open."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:
            try:
                connection = await asyncio.wait_for(aio_pika.connect(url), timeout=5)
            except Exception:
                await asyncio.sleep(0.2)
                continue
            try:
                await (await connection.channel()).close()
            finally:
                await connection.close()
            return time.monotonic() - start


@pytest.mark.broker
@pytest.mark.timeout(180)
async def test_services_reconnect_after_broker_restart(
    cluster: ProcessCluster, amqp_broker: AmqpBroker
) -> None:
    ctl = amqp_broker.rabbitmqctl
    if ctl is None:
        pytest.skip("rabbitmqctl cannot reach this broker")
    async with running_pipeline(cluster, ["br-1", "br-2"], "--slots", "4") as client:
        started = time.monotonic()
        handles = await client.submit_many(
            [TaskRequest("burn", params={"seconds": 0.02}) for _ in range(TASKS_BEFORE)]
        )
        await wait_until(lambda: sum(client.shown.values()) >= 20, timeout=30)
        done_before_stop = sum(client.shown.values())
        try:
            await ctl("stop_app")
            stopped_at = time.monotonic()
            await asyncio.sleep(DOWN_S)
        finally:
            await ctl("start_app")
            started_app_at = time.monotonic()
            broker_ready_s = await amqp_answers(amqp_broker.url, timeout=120)
        outage_s = started_app_at - stopped_at

        reconnect_s: dict[str, float] = {}
        for name in cluster.processes:

            async def connected(name: str = name) -> bool:
                body = await health(cluster, name)
                return body.get("broker_connected") is True and body.get("status") == "ok"

            await wait_until(connected, timeout=RECONNECT_LIMIT_S + 5)
            reconnect_s[name] = time.monotonic() - started_app_at
        assert max(reconnect_s.values()) <= RECONNECT_LIMIT_S, reconnect_s

        # New work flows through the reconnected services too.
        handles += await client.submit_many(
            [TaskRequest("noop", params={"echo": i}) for i in range(TASKS_AFTER)]
        )
        results = await gather_results(client, handles, timeout=120)
        delivery = assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        record(
            "broker_restart",
            delivery.as_dict()
            | {
                "restarts": 1,
                "completed_before_stop": done_before_stop,
                "outage_s": outage_s,
                "broker_ready_after_start_app_s": broker_ready_s,
                "slowest_service_reconnect_s": max(reconnect_s.values()),
                "reconnect_s": reconnect_s,
                "all_done_after_start_app_s": time.monotonic() - started_app_at,
                "run_s": time.monotonic() - started,
            },
        )
