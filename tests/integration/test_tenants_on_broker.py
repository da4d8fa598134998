"""Tenants on RabbitMQ, as a user meets them: ``boson submit --tenant``, the
scheduler's ``unknown-tenant``, the record's ``--tenant`` filter and ``boson
tenants``, against service processes.

The scheduler, balancer and monitor run as ``boson run`` processes with one
tenants file; every command is the CLI in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from boson.client import Client
from boson_shared.errors import TaskNotFoundError
from tests.support.cluster import ROOT, ProcessCluster
from tests.support.waiting import until, wait_until

CLI_TIMEOUT_S = 60.0
TENANTS = """
[tenants.research]
weight = 2
may_preempt = true
quota = { cpu = 8, memory = 16 }

[tenants.batch]
quota = { cpu = 4 }

[tenants.default]
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def cluster(amqp_url: str, namespace: str, tmp_path: Path) -> Iterator[ProcessCluster]:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(TENANTS)
    processes = ProcessCluster(
        amqp_url,
        namespace,
        tmp_path,
        extra_env={
            "BOSON_TENANTS_FILE": str(tenants),
            "BOSON_TENANTS_REPORT_INTERVAL_S": "0.3",
            "BOSON_TENANTS_SAMPLE_INTERVAL_S": "1",
            "BOSON_RECORD_CHECK_INTERVAL_S": "0.5",
        },
    )
    try:
        yield processes
    finally:
        processes.stop_all()


async def boson(cluster: ProcessCluster, *args: str) -> Ran:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "boson", *args],
        cwd=ROOT,
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def scrape(cluster: ProcessCluster, service: str) -> str:
    url = f"http://127.0.0.1:{cluster.processes[service].health_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_tenants_from_submit_to_the_record_the_report_and_the_gauges(
    cluster: ProcessCluster,
) -> None:
    for service in ("monitor", "scheduler", "balancer"):
        cluster.start(service)
    await cluster.wait_healthy()

    # A tenant the file does not declare: one failed result naming the known ones.
    refused = await boson(
        cluster, "submit", "noop", "--tenant", "nobody", "--wait", "--json", "--wait-timeout", "30"
    )
    assert refused.code == 1, refused.err
    result = json.loads(refused.out.splitlines()[0])
    assert result["status"] == "failed"
    assert result["error"]["error_type"] == "unknown-tenant"
    assert result["error"]["message"] == (
        "tenant 'nobody' is not in the tenants file; the known tenants: batch, default, research"
    )

    # The scheduler goes on: a known tenant's task is taken (no executor runs it).
    accepted = await boson(cluster, "submit", "noop", "--tenant", "research", "--priority", "-5")
    assert accepted.code == 0, accepted.err
    kept = accepted.out.strip()
    scheduler = cluster.processes["scheduler"]
    await until(
        lambda: (scheduler.health() or {}).get("placed") == 1, "the scheduler placed it", 30
    )

    # The record has each with its tenant and priority (once the monitor took them in).
    client = await Client.connect(settings=cluster.settings())
    try:

        async def recorded() -> bool:
            try:
                placed = await client.get(kept)
            except TaskNotFoundError:
                return False
            page = await client.tasks(tenant="nobody")
            return bool(page.records) and placed.tenant == "research"

        await wait_until(recorded, 30, step=0.2)
    finally:
        await client.delete_queues()
        await client.close()
    one = await boson(cluster, "task", kept, "--json")
    assert one.code == 0, one.err
    assert (json.loads(one.out)["tenant"], json.loads(one.out)["priority"]) == ("research", -5)
    mine = await boson(cluster, "tasks", "--tenant", "nobody", "--json")
    assert mine.code == 0, mine.err
    tasks = json.loads(mine.out)["tasks"]
    assert [(t["task_id"], t["state"]) for t in tasks] == [(result["task_id"], "failed")]

    # The active balancer's report, as a table and as JSON.
    shown = await boson(cluster, "tenants")
    assert shown.code == 0, shown.err
    assert "research" in shown.out
    assert "batch" in shown.out
    listed = await boson(cluster, "tenants", "--json")
    assert listed.code == 0, listed.err
    report = json.loads(listed.out)
    by_name = {t["name"]: t for t in report["tenants"]}
    assert set(by_name) == {"research", "batch", "default"}
    assert (by_name["research"]["weight"], by_name["research"]["may_preempt"]) == (2.0, True)
    assert by_name["research"]["quota"] == {"cpu": 8.0, "memory": 16.0}
    # Its task waits for a node (none runs): the balancer holds it in research's line.
    assert (by_name["research"]["waiting"], by_name["research"]["running"]) == (1, 0)

    # The monitor's gauges of the report.
    metrics = scrape(cluster, "monitor")
    assert 'boson_tenant_weight{tenant="research"} 2.0' in metrics
    assert 'boson_tenant_quota_units{resource="memory",tenant="research"} 16.0' in metrics

    # The record keeps samples of the reports, read over the bus.
    samples: list[dict[str, object]] = []

    async def sampled() -> bool:
        ran = await boson(cluster, "tenants", "--history", "--tenant", "research", "--json")
        assert ran.code == 0, ran.err
        samples[:] = json.loads(ran.out)["samples"]
        return bool(samples)

    await wait_until(sampled, 30, step=0.5)
    assert {s["name"] for s in samples} == {"research"}
    assert samples[0]["quota"] == {"cpu": 8.0, "memory": 16.0}


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_tenants_with_no_balancer_says_so_in_one_line(cluster: ProcessCluster) -> None:
    ran = await boson(cluster, "tenants", "--timeout", "1")
    assert ran.code == 2
    assert ran.err.strip() == (
        f"boson: NoAnswerError: no tenants report within 1 s on namespace "
        f"{cluster.namespace!r}: is a balancer running (`boson run balancer`)? "
        "The active one reports once it has received work"
    )
