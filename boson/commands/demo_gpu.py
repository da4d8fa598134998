"""``boson demo --gpu``: shared and whole GPUs through the real services, on configured devices.

Two executors with configured (fake) GPU device ids — ``gpu-a`` with two
A100s, ``gpu-b`` with four T4s — and six tasks: three shares of one device,
two whole GPUs of a given model, one whole T4 and one without GPU. They run
at once (each holds its devices for a second), so shares meet on one device
and whole GPUs take devices of their own. What is printed is what each
task's worker process saw: its ``CUDA_VISIBLE_DEVICES`` and, for a share,
its memory budget — the environment the executor gave it, read in the child.
No GPU is needed: the ids are names, nothing is run on them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from boson.client import TaskRequest
from boson.commands.demo import say
from boson.launcher import EmbeddedCluster
from boson_services.scheduler.app import SchedulerService
from boson_shared.contract.messages import ResourceRequest
from boson_shared.scheduling.scores import Strategy
from boson_shared.settings import BosonSettings

NODES: dict[str, tuple[str, ...]] = {
    "gpu-a": ("GPU-demo-a0:A100:40960", "GPU-demo-a1:A100:40960"),
    "gpu-b": ("GPU-demo-b0:T4:15360", "GPU-demo-b1:T4:15360", "GPU-demo-b2:T4:15360",
              "GPU-demo-b3:T4:15360"),
}  # fmt: skip
TASKS: tuple[tuple[str, float, str | None], ...] = (
    ("share-1", 0.5, "T4"),
    ("share-2", 0.5, "T4"),
    ("share-3", 0.25, "T4"),
    ("two-a100", 2.0, "A100"),
    ("one-t4", 1.0, "T4"),
    ("cpu-only", 0.0, None),
)
"""(name, GPUs, model constraint)."""
HOLD_S = 1.0
_WAIT_S = 30.0


async def demo_gpu(strategy: Strategy) -> dict[str, Any]:
    settings = BosonSettings(namespace="demo", instance_id="demo-gpu")
    cluster = EmbeddedCluster(settings, notice=say)
    await cluster.ready_kernels(strategy)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    try:
        await cluster.start_control_plane(strategy=strategy)
        for node_id, devices in NODES.items():
            await cluster.start_executor(node_id, gpu_devices=devices, slots=len(TASKS))
        scheduler = next(s for s in cluster.services if isinstance(s, SchedulerService))
        table = scheduler.handlers.table
        await _until(
            lambda: len(table) == len(NODES) and table.has_devices, "the scheduler sees the GPUs"
        )
        client = await cluster.client(client_id="demo-gpu-client")
        handles = await client.submit_many(
            [
                TaskRequest(
                    "gpu_devices",
                    params={"seconds": HOLD_S},
                    task_id=name,
                    requests=ResourceRequest(gpu=gpu, gpu_model=model) if gpu else None,
                )
                for name, gpu, model in TASKS
            ]
        )
        for (name, gpu, model), handle in zip(TASKS, handles, strict=True):
            result = await handle.result(_WAIT_S)
            out = result.output if isinstance(result.output, dict) else {}
            rows.append(
                {
                    "task": name,
                    "gpu": gpu,
                    "gpu_model": model,
                    "status": result.status,
                    "node": result.node_id,
                    "CUDA_VISIBLE_DEVICES": out.get("CUDA_VISIBLE_DEVICES"),
                    "NVIDIA_VISIBLE_DEVICES": out.get("NVIDIA_VISIBLE_DEVICES"),
                    "memory_budget_mib": out.get("memory_budget_mib"),
                    "error": result.error.message if result.error is not None else None,
                }
            )
        await client.close()
    finally:
        await cluster.stop()
    return {
        "strategy": strategy,
        "nodes": {node: list(devices) for node, devices in NODES.items()},
        "tasks": rows,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


def render_gpu(report: dict[str, Any]) -> None:
    console = Console()
    for node, devices in report["nodes"].items():
        console.print(f"[bold]{node}[/bold]: " + ", ".join(devices))
    table = Table(title=f"GPU tasks placed with {report['strategy']!r}")
    for column in ("task", "asks", "node", "CUDA_VISIBLE_DEVICES", "memory budget"):
        table.add_column(column)
    for row in report["tasks"]:
        asks = "no GPU" if not row["gpu"] else f"{row['gpu']:g} GPU"
        if row["gpu_model"]:
            asks += f" ({row['gpu_model']})"
        seen = row["CUDA_VISIBLE_DEVICES"]
        table.add_row(
            row["task"],
            asks,
            row["node"] or "-",
            ("(none)" if seen == "" else seen) if row["status"] == "succeeded" else row["error"],
            f"{row['memory_budget_mib']} MiB" if row["memory_budget_mib"] else "-",
        )
    console.print(table)
    console.print(
        "A share below 1 GPU is a share of ONE device (shares meet on a device until it is "
        "full); 1 or more is that many whole devices of one node. The budget is not enforced. "
        f"({report['elapsed_s']:.2f}s through monitor, scheduler, balancer and executors)"
    )


async def _until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(_WAIT_S):
            while not condition():  # noqa: ASYNC110 - state owned by other tasks
                await asyncio.sleep(0.02)
    except TimeoutError as error:
        raise TimeoutError(f"demo: timed out waiting until {what}") from error


__all__ = ["HOLD_S", "NODES", "TASKS", "demo_gpu", "render_gpu"]
