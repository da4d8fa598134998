"""A standby balancer that takes over counts the work its predecessor admitted.

On RabbitMQ, with service processes: tenant ``solo`` may use one CPU and no
more. The active balancer admits a long task of it; it is killed; the
standby becomes the active consumer of placed work, asks the executor what
it holds and keeps ``solo``'s next task waiting until the first ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boson.client import Client, TaskRequest
from boson_shared.contract.messages import ResourceRequest
from tests.support.cluster import ProcessCluster
from tests.support.waiting import until

HANDLERS = "tests.e2e.steering_handlers"
TENANTS = """
[tenants.solo]
quota = { cpu = 1 }
borrowing_limit = { cpu = 0 }

[tenants.default]
"""


@pytest.fixture
def cluster(amqp_url: str, namespace: str, tmp_path: Path) -> Iterator[ProcessCluster]:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(TENANTS)
    processes = ProcessCluster(
        amqp_url,
        namespace,
        tmp_path,
        extra_env={"BOSON_TENANTS_FILE": str(tenants), "BOSON_CPU": "4"},
    )
    try:
        yield processes
    finally:
        processes.stop_all()


def solo(seconds: float) -> TaskRequest:
    return TaskRequest(
        "steer_async",
        params={"seconds": seconds},
        tenant="solo",
        requests=ResourceRequest(cpu=1),
    )


def health(cluster: ProcessCluster, name: str) -> dict[str, Any]:
    return dict(cluster.processes[name].health() or {})


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_the_standby_counts_the_running_work_when_it_takes_over(
    cluster: ProcessCluster,
) -> None:
    for service in ("monitor", "scheduler", "executor"):
        cluster.start(
            service,
            *(("--slots", "4", "--handler-module", HANDLERS) if service == "executor" else ()),
        )
    cluster.start("balancer", name="bal-1")
    await cluster.wait_healthy()
    cluster.start("balancer", name="bal-2")
    await cluster.wait_healthy("bal-2")

    def solo_running(name: str) -> int:
        tenants = health(cluster, name).get("tenants") or {}
        return int(tenants.get("solo", {}).get("running", 0))

    client = await Client.connect(settings=cluster.settings())
    try:
        (first,) = await client.submit_many([solo(60.0)])
        await until(lambda: health(cluster, "executor").get("running") == 1, "first runs", 30)
        # The one that admitted it is the active consumer; the other stands by.
        await until(lambda: solo_running("bal-1") + solo_running("bal-2") == 1, "admitted", 10)
        active, standby_name = ("bal-1", "bal-2") if solo_running("bal-1") else ("bal-2", "bal-1")
        cluster.kill(active)

        (second,) = await client.submit_many([solo(2.0)])

        def standby_holds_it() -> bool:
            tenants = health(cluster, standby_name).get("tenants") or {}
            return bool(tenants.get("solo", {}).get("waiting") == 1)

        await until(standby_holds_it, "the standby took the placement", 30)
        await asyncio.sleep(1.0)
        assert health(cluster, "executor").get("running") == 1  # solo is at its ceiling
        standby = health(cluster, standby_name)
        assert standby["tenants"]["solo"] == {"waiting": 1, "running": 1, "preempted": 0}
        assert standby["adopted"] == 1

        await first.cancel()
        result = await second.result(timeout=30)
        assert result.status == "succeeded"
    finally:
        await client.delete_queues()
        await client.close()
