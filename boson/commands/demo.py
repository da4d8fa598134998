"""``boson demo``: the worked example (docs/design.md#worked-example) through the real services.

Five nodes of 500 units whose heartbeats report 350, 400, 300, 250 and 200
units allocated; one task with C=100, D=1000. The monitor, scheduler and
balancer run on the embedded broker; the nodes heartbeat and take their
assignments like executors. What is printed comes from the messages that
crossed the bus — the ``TaskPlaced`` the scheduler emitted (with every
node's fit and score) and the ``TaskAssigned`` the chosen node received —
not from a second computation.

A first run compiles the scheduler's placement kernels before any service
starts, and says so on stderr; the time printed is the pipeline's, from then on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from boson.launcher import EmbeddedCluster
from boson.simulated_node import SimulatedNode
from boson_services.scheduler.app import SchedulerService
from boson_shared.contract.messages import Message, ResourceVector, TaskPlaced
from boson_shared.contract.topology import RK_PLACED
from boson_shared.runtime.bounded_run import run_bounded
from boson_shared.runtime.tap import Tap
from boson_shared.scheduling.scores import DEFAULT_STRATEGY, STRATEGIES, Strategy
from boson_shared.settings import BosonSettings

NODE_CAPACITY = 500.0
NODE_ALLOCATED = (350.0, 400.0, 300.0, 250.0, 200.0)
_WAIT_S = 20.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the worked placement example through the real services, in-process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY)
    parser.add_argument("--complexity", type=float, default=100.0, help="task complexity C")
    parser.add_argument("--data-size", type=float, default=1000.0, help="task data size D")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="instead: shared and whole GPUs on two executors with configured (fake) devices",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.gpu:
        from boson.commands.demo_gpu import demo_gpu, render_gpu

        gpu_report = run_bounded(demo_gpu(args.strategy))
        if args.json:
            print(json.dumps(gpu_report, indent=2))
        else:
            render_gpu(gpu_report)
        return 0
    report = run_bounded(demo(args.strategy, args.complexity, args.data_size))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)
    return 0


def say(text: str) -> None:
    """A line about the run itself, on stderr (``--json`` keeps stdout to its object)."""
    Console(stderr=True).print(text, style="dim", highlight=False)


async def demo(strategy: Strategy, complexity: float, data_size: float) -> dict[str, Any]:
    settings = BosonSettings(namespace="demo", instance_id="demo")
    cluster = EmbeddedCluster(settings, notice=say)
    codec = cluster._codec()
    names = settings.names()
    await cluster.ready_kernels(strategy)
    started = time.perf_counter()
    try:
        await cluster.start_control_plane(strategy=strategy)
        nodes = [
            SimulatedNode(
                settings,
                cluster.transport(),
                codec,
                node_id=f"node-{number}",
                capacity=ResourceVector(cpu=NODE_CAPACITY, memory=NODE_CAPACITY),
                allocated=ResourceVector(cpu=allocated, memory=allocated),
                measured=allocated / NODE_CAPACITY,
            )
            for number, allocated in enumerate(NODE_ALLOCATED, start=1)
        ]
        for node in nodes:
            await cluster.start(node)
        scheduler = next(s for s in cluster.services if isinstance(s, SchedulerService))
        await _until(lambda: len(scheduler.handlers.table) == len(nodes), "scheduler sees nodes")

        tap = Tap(cluster.transport(), codec, "demo.tap", [(names.work_exchange, RK_PLACED)])
        await tap.start()
        client = await cluster.client(client_id="demo-client")
        handle = await client.submit(
            "noop", complexity=complexity, data_size=data_size, explain=True
        )

        def is_ours(message: Message) -> bool:
            return isinstance(message, TaskPlaced) and message.task.task_id == handle.task_id

        placed = await tap.wait_for(is_ours, _WAIT_S)
        assert isinstance(placed, TaskPlaced)
        assigned_to = None
        if placed.node_id is not None:
            target = next(n for n in nodes if n.node_id == placed.node_id)
            await _until(lambda: bool(target.received), "the chosen node receives the task")
            assigned_to = target.received[0].node_id
            await handle.result(_WAIT_S)
        await tap.close()
        await client.close()
    finally:
        await cluster.stop()
    return build_report(placed, assigned_to, time.perf_counter() - started)


def build_report(placed: TaskPlaced, assigned_to: str | None, elapsed: float) -> dict[str, Any]:
    """The demo's output, from the ``TaskPlaced`` that crossed the bus."""
    explanation = placed.explanation
    assert explanation is not None
    nodes = [
        {
            "node_id": n.node_id,
            "alive": n.alive,
            "fits": n.fits,
            "score": n.score,
            "utilisation_before": round(n.utilisation_before, 4),
            "utilisation_after": None
            if n.utilisation_after is None
            else round(n.utilisation_after, 4),
        }
        for n in explanation.nodes
    ]
    chosen = next((n for n in nodes if n["node_id"] == placed.node_id), None)
    demand = placed.demand
    return {
        "strategy": placed.strategy,
        "complexity": placed.task.complexity,
        "data_size": placed.task.data_size,
        "demand": demand.cpu,
        "demand_vector": demand.model_dump(),
        "nodes": nodes,
        "chosen_node": placed.node_id,
        "assigned_node": assigned_to,
        "utilisation_before": None if chosen is None else chosen["utilisation_before"],
        "utilisation_after": None if chosen is None else chosen["utilisation_after"],
        "elapsed_s": round(elapsed, 3),
    }


def render(report: dict[str, Any]) -> None:
    console = Console()
    console.print(
        f"[bold]Task[/bold] C={report['complexity']:g}, D={report['data_size']:g} → "
        f"demand [bold]{report['demand']:g}[/bold] units "
        f"(Q = C + D/100; cpu {report['demand_vector']['cpu']:g}, "
        f"memory {report['demand_vector']['memory']:g})"
    )
    table = Table(title=f"Placement with {report['strategy']!r}")
    for column in ("node", "utilisation", "fits", "score", "after"):
        table.add_column(column, justify="right" if column != "node" else "left")
    for node in report["nodes"]:
        chosen = node["node_id"] == report["chosen_node"]
        table.add_row(
            ("→ " if chosen else "  ") + node["node_id"],
            f"{node['utilisation_before']:.2f}",
            "yes" if node["fits"] else "no",
            "-" if node["score"] is None else f"{node['score']:.3f}",
            "-" if node["utilisation_after"] is None else f"{node['utilisation_after']:.2f}",
            style="bold green" if chosen else None,
        )
    console.print(table)
    if report["chosen_node"] is None:
        console.print("No node fits now: the task waits as pending.")
    else:
        console.print(
            f"Chosen: [bold]{report['chosen_node']}[/bold], utilisation "
            f"{report['utilisation_before']:.2f} → {report['utilisation_after']:.2f}; "
            f"the balancer delivered it to {report['assigned_node']}. "
            f"({report['elapsed_s']:.2f}s through monitor, scheduler and balancer)"
        )


async def _until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(_WAIT_S):
            while not condition():  # noqa: ASYNC110 - state owned by other tasks
                await asyncio.sleep(0.02)
    except TimeoutError as error:
        raise TimeoutError(f"demo: timed out waiting until {what}") from error


__all__ = ["build_report", "demo", "register", "say"]
