"""Make the README's ``docs/dashboard-cluster.png`` and ``docs/dashboard-task.png`` (and more).

``.venv/bin/python docs/dashboard_screenshot.py [--out docs] [--seconds 40]``

An embedded Boson with the dashboard on, 40 simulated nodes of different
sizes and loads (a few stop heartbeating, a few run hot), and a client
submitting tasks for ``--seconds``, and one task submitted with ``explain``;
a sample ``tenants.report`` (three tenants, one borrowing, one waiting)
published where the balancer publishes it; then Debian's Chromium
(Playwright) photographs the cluster, tenants, tasks, one task, alerts and
throughput pages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boson.launcher import EmbeddedCluster
from boson.simulated_node import SimulatedNode
from boson_services.monitor.app import MonitorService
from boson_shared.contract.messages import ResourceVector
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage
from boson_shared.contract.topology import RK_TENANTS
from boson_shared.runtime.publisher import Route
from boson_shared.settings import BosonSettings
from tests.support.chromium import headless_chromium


def sample_tenants() -> TenantsReport:
    def tenant(name: str, quota: float, usage: float, pending: float, weight: float) -> TenantUsage:
        return TenantUsage(
            name=name,
            weight=weight,
            may_preempt=name == "research",
            quota={"cpu": quota, "memory": quota * 2},
            guarantee={"cpu": quota, "memory": quota * 2},
            borrowing_limit={"cpu": quota / 2},
            usage={"cpu": usage, "memory": usage * 1.5},
            borrowed={"cpu": max(0.0, usage - quota)},
            pending={"cpu": pending},
            running=int(usage // 100),
            waiting=int(pending // 100),
        )

    return TenantsReport(
        balancer_id="balancer-1",
        seq=1,
        pool={"cpu": 40_000.0, "memory": 80_000.0, "gpu": 16.0},
        grace_s=30.0,
        tenants=(
            tenant("research", 16_000, 19_500, 0, 2.0),
            tenant("analytics", 12_000, 7_200, 0, 1.0),
            tenant("batch", 8_000, 8_000, 4_800, 1.0),
        ),
    )


async def make(out: Path, seconds: float) -> None:
    os.environ.update(
        BOSON_DASHBOARD_HISTORY_INTERVAL_S="2",
        BOSON_DASHBOARD_LIVE_INTERVAL_S="1",
        BOSON_OVERLOAD_SUSTAIN_S="2",
        BOSON_LOG_LEVEL="WARNING",
    )
    cluster = EmbeddedCluster(BosonSettings())
    pick = random.Random(3)
    await cluster.start_control_plane(dashboard_port=0)
    nodes: list[SimulatedNode] = []
    for number in range(40):
        big = number % 4 == 0
        capacity = ResourceVector(
            cpu=1600 if big else 800, memory=3200 if big else 1600, gpu=4 if number % 10 == 0 else 0
        )
        share = pick.uniform(0.1, 0.8)
        node = SimulatedNode(
            cluster.settings,
            cluster.transport(),
            cluster._codec(),
            node_id=f"node-{number:03d}",
            capacity=capacity,
            allocated=ResourceVector(
                cpu=capacity.cpu * share, memory=capacity.memory * share * 0.7, gpu=capacity.gpu / 2
            ),
            slots=8 if big else 4,
            measured=0.95 if number in (5, 17) else pick.uniform(0.05, 0.7),
            hold_s=0.2,
            heartbeat_interval_s=0.5,
        )
        await cluster.start(node)
        nodes.append(node)
    client = await cluster.client()

    async def load() -> None:
        while True:
            handles = [await client.submit("noop") for _ in range(pick.randint(5, 25))]
            await asyncio.gather(*(handle.result(timeout=60) for handle in handles))
            await asyncio.sleep(0.5)

    loading = asyncio.ensure_future(load())
    try:
        await asyncio.sleep(seconds * 2 / 3)
        for node in nodes[30:33]:
            node.heartbeating = False
        explained = await client.submit(
            "noop",
            params={"echo": {"rows": 1200, "mean": 41.7, "anomalies": [17, 802, 1033]}},
            complexity=40.0,
            data_size=2000.0,
            explain=True,
        )
        await explained.result(timeout=60)
        (monitor,) = [s for s in cluster.services if isinstance(s, MonitorService)]
        await monitor.publisher.publish(
            Route(monitor.names.events_exchange, RK_TENANTS), sample_tenants()
        )
        await asyncio.sleep(seconds / 3)
        assert cluster.dashboard_url is not None
        async with headless_chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            for path, name in (
                ("", "cluster"),
                ("tenants", "tenants"),
                ("tasks", "tasks"),
                (f"tasks/{explained.task_id}", "task"),
                ("alerts", "alerts"),
                ("throughput", "throughput"),
            ):
                await page.goto(cluster.dashboard_url + path)
                await page.wait_for_function("document.body.dataset.updated !== undefined")
                await asyncio.sleep(1.5)
                await page.screenshot(path=str(out / f"dashboard-{name}.png"), full_page=True)
    finally:
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
        await client.close()
        await cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    asyncio.run(make(args.out, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
