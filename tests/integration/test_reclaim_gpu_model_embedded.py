"""Reclaim frees a device of the model the claimant asks for, on the embedded broker.

Two executors of one GPU each: one A100, one V100. Tenant ``b`` (no quota)
borrows both with long tasks, the younger on the V100. Tenant ``a`` (one
GPU of quota, may preempt) then submits a task that asks for an A100. Past
the grace period the balancer must stop ``b``'s task on the A100 — not the
youngest, on the V100, which would free nothing ``a`` can use — and ``a``'s
task must start there at once. Every task ends succeeded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from boson.client import TaskRequest
from boson.launcher import EmbeddedCluster
from boson_services.executor.app import ExecutorService
from boson_shared.contract.messages import ResourceRequest
from boson_shared.settings import BosonSettings
from tests.support.waiting import until, wait_for_nodes

HANDLERS = "tests.e2e.steering_handlers"
GRACE_S = 1.0
B_LONG_S = 12.0
TENANTS = """
[tenants.a]
quota = { gpu = 1 }
may_preempt = true

[tenants.b]
"""


def on(model: str, tenant: str, seconds: float, task_id: str, starts: Path) -> TaskRequest:
    return TaskRequest(
        "steer_async",
        params={"seconds": seconds, "starts": str(starts)},
        requests=ResourceRequest(cpu=0.5, memory=0.5, gpu=1, gpu_model=model),
        task_id=task_id,
        tenant=tenant,
        timeout_s=60,
    )


def started(starts: Path, task_id: str) -> int:
    return sum(1 for path in starts.iterdir() if path.name.startswith(f"{task_id}."))


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_reclaim_stops_the_borrowed_task_on_the_model_the_claimant_asks_for(
    tmp_path: Path,
) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(TENANTS)
    starts = tmp_path / "starts"
    starts.mkdir()
    settings = BosonSettings(tenants_file=tenants, preempt_grace_s=GRACE_S)
    cluster = EmbeddedCluster(settings)
    try:
        await cluster.start_control_plane()
        executors: dict[str, ExecutorService] = {}
        for node, device in (("n-a100", "0:A100-SXM4-40GB"), ("n-v100", "0:V100-SXM2-16GB")):
            executors[node] = await cluster.start_executor(
                node,
                slots=2,
                cpu=2.0,
                memory=2.0,
                gpu_devices=(device,),
                gpu_discovery=False,
                handler_modules=(HANDLERS,),
            )
        client = await cluster.client()
        await wait_for_nodes(client, 2)
        b_old = await client.submit_many([on("A100", "b", B_LONG_S, "b-old", starts)])
        await until(lambda: started(starts, "b-old") == 1, "b-old runs", 10)
        b_young = await client.submit_many([on("V100", "b", B_LONG_S, "b-young", starts)])
        await until(lambda: started(starts, "b-young") == 1, "b-young runs", 10)

        submitted = time.monotonic()
        (a1,) = await client.submit_many([on("A100", "a", 0.5, "a1", starts)])
        await until(lambda: started(starts, "a1") == 1, "a1 runs", GRACE_S + 5.0)
        took = time.monotonic() - submitted
        assert took <= GRACE_S + 3.0, f"a1 started only after {took:.1f}s"
        preempted = {node: e.handlers.cancels.preempted for node, e in executors.items()}
        assert preempted == {"n-a100": 1, "n-v100": 0}

        results = [await h.result(timeout=60) for h in (a1, *b_old, *b_young)]
        assert [r.status for r in results] == ["succeeded"] * 3
        assert started(starts, "b-young") == 1  # never stopped
        await client.close()
    finally:
        await cluster.stop()
