"""Tenants on RabbitMQ: borrowed capacity is taken back by preemption, nothing lost.

Two executors of four slots and four CPUs each (a pool of 8). Tenant ``b``
has no quota and borrows: it fills the pool with long tasks and queues more.
Tenant ``a`` (quota half the pool, may preempt) then submits four tasks. The
balancer must give ``a`` half the pool within the grace period plus 2 s —
preempting four of ``b``'s running tasks, which go back to the front of
``b``'s line — and every one of ``b``'s tasks, the preempted ones included,
must end succeeded exactly once at the client.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from boson.client import TaskRequest
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.messages import ResourceRequest
from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.contract.topology import RK_TENANTS
from boson_shared.runtime.tap import Tap
from tests.reliability.harness import (
    CountingClient,
    assert_exactly_once,
    gather_results,
    health,
    record,
    start_pipeline,
    wait_for_nodes,
    wait_until,
)
from tests.support.cluster import ProcessCluster

HANDLERS = "tests.reliability.handlers"
NODES = ["node-a", "node-b"]
SLOTS = 4
POOL = SLOTS * len(NODES)
GRACE_S = 3.0
TENANTS = """
[tenants.a]
quota = { cpu = 4 }
may_preempt = true

[tenants.b]
"""
B_LONG_S = 12.0
A_TASK_S = 4.0
ONE_CPU = ResourceRequest(cpu=1, memory=1)


def requests(tenant: str, count: int, seconds: float) -> list[TaskRequest]:
    return [
        TaskRequest(
            "tenant-hold",
            params={"seconds": seconds},
            requests=ONE_CPU,
            task_id=f"{tenant}-{i}",
            tenant=tenant,
            timeout_s=120,
        )
        for i in range(count)
    ]


def started(client: CountingClient, task_ids: list[str]) -> int:
    return sum(1 for task_id in task_ids if client.latest_progress(task_id) is not None)


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_tenant_takes_its_quota_back_from_a_borrower_on_rabbitmq(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    tenants_file = tmp_path / "tenants.toml"
    tenants_file.write_text(TENANTS)
    cluster.extra_env.update(
        BOSON_TENANTS_FILE=str(tenants_file),
        BOSON_PREEMPT_GRACE_S=str(GRACE_S),
        BOSON_CPU=str(SLOTS),
        BOSON_MEMORY=str(SLOTS),
        BOSON_TENANTS_REPORT_INTERVAL_S="0.5",
    )
    await start_pipeline(cluster, NODES, "--slots", str(SLOTS), "--handler-module", HANDLERS)
    client = await CountingClient.connect(settings=cluster.settings())
    assert isinstance(client, CountingClient)
    transport = AmqpTransport(cluster.amqp_url, connection_name="boson-test-tenants")
    names = cluster.settings().names()
    reports = Tap(
        transport,
        EnvelopeCodec.from_settings(cluster.settings()),
        f"{cluster.namespace}.watch.tenants",
        [(names.events_exchange, RK_TENANTS)],
    )
    await reports.start()
    try:
        await wait_for_nodes(client, len(NODES))
        # b fills the pool, and queues as much again.
        b_handles = await client.submit_many(requests("b", 2 * POOL, B_LONG_S))
        b_ids = [h.task_id for h in b_handles]
        await wait_until(lambda: started(client, b_ids) == POOL, timeout=30)
        assert started(client, b_ids) == POOL  # nothing beyond the pool runs

        submitted = time.monotonic()
        a_handles = await client.submit_many(requests("a", POOL // 2, A_TASK_S))
        a_ids = [h.task_id for h in a_handles]
        await wait_until(lambda: started(client, a_ids) == POOL // 2, timeout=GRACE_S + 10)
        took = time.monotonic() - submitted
        assert took <= GRACE_S + 2.0, f"a held half the pool only after {took:.1f}s"

        body = await health(cluster, "balancer")
        tenants = body["tenants"]
        assert isinstance(tenants, dict)
        assert tenants["b"]["preempted"] == POOL // 2, tenants
        assert tenants["a"]["preempted"] == 0

        results = await gather_results(client, [*a_handles, *b_handles], timeout=90)
        delivery = assert_exactly_once(client, [*a_ids, *b_ids])
        assert {r.status for r in results.values()} == {"succeeded"}
        # A preempted run is no failed attempt: every task succeeded at its first.
        assert {r.attempts for r in results.values()} == {1}

        # The balancer reported a's usage reaching its quota.
        def a_at_quota(report: TenantsReport) -> bool:
            usage = next(t for t in report.tenants if t.name == "a").usage
            return usage.get("cpu", 0.0) >= POOL // 2

        seen = [m for m in reports.messages if isinstance(m, TenantsReport)]
        assert seen
        assert any(a_at_quota(r) for r in seen)
        assert seen[-1].pool["cpu"] == POOL
        record(
            "tenants_preemption",
            delivery.as_dict()
            | {"a_half_pool_after_s": round(took, 2), "grace_s": GRACE_S, "preempted": POOL // 2},
        )
    finally:
        await reports.close()
        await transport.close()
        await client.close()
