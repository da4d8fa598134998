"""``boson status``: nodes, utilisation and queue depths of a running cluster."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from boson.client import Client
from boson.commands.broker import add_cluster_arguments, cluster_settings
from boson_services.monitor.dashboard.present import node_out, totals
from boson_shared.contract.messages import ClusterSnapshot
from boson_shared.errors import NoAnswerError
from boson_shared.runtime.bounded_run import run_bounded
from boson_shared.settings import BosonSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("status", help="show nodes, utilisation and queue depths")
    add_cluster_arguments(parser, timeout_s=10.0, timeout_help="wait for a snapshot (s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = cluster_settings(args.broker, "status")
    report = run_bounded(collect(settings, args.timeout))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)
    return 0


async def collect(settings: BosonSettings, timeout: float) -> dict[str, Any]:
    client = await Client.connect(settings=settings)
    try:
        try:
            snapshot = await client.snapshot(timeout)
        except TimeoutError:
            raise NoAnswerError(
                f"no cluster snapshot within {timeout:g} s on namespace "
                f"{settings.namespace!r}: is a monitor running (`boson run monitor`)?"
            ) from None
        names = client.names
        queues = [names.submit_queue, names.placed_queue, names.dead_letter_queue]
        queues += [names.node_queue(node.node_id) for node in snapshot.nodes]
        depths = {queue: await client.queue_depth(queue) for queue in queues}
    finally:
        await client.delete_queues()  # a one-shot client: nothing will come for it
        await client.close()
    return report_of(snapshot, depths)


def report_of(snapshot: ClusterSnapshot, depths: dict[str, int]) -> dict[str, Any]:
    """The dashboard's own shaping (``GET /api/cluster``, ``GET /api/nodes``): one code path."""
    return {
        "cluster": totals(snapshot.nodes, snapshot.backlog).model_dump(mode="json"),
        "nodes": [node_out(node).model_dump(mode="json") for node in snapshot.nodes],
        "backlog": snapshot.backlog,
        "queues": depths,
    }


_STATE_STYLE = {"up": "up", "down": "[red]down[/red]", "probation": "[yellow]probation[/yellow]"}


def render(report: dict[str, Any]) -> None:
    console = Console()
    cluster = report["cluster"]
    console.print(
        f"{cluster['nodes']} nodes: {cluster['up']} up, {cluster['down']} down, "
        f"{cluster['probation']} on probation; {cluster['running']}/{cluster['slots']} running"
    )
    table = Table(title="Nodes")
    for column in ("node", "state", "running", "free", "allocated", "cpu", "memory"):
        table.add_column(column, justify="left" if column == "node" else "right")
    for node in report["nodes"]:
        alive = node["alive"]
        table.add_row(
            node["node_id"],
            _STATE_STYLE[node["status"]],
            f"{node['running']}/{node['slots']}" if alive else f"-/{node['slots']}",
            str(node["free_slots"]) if alive else "-",
            f"{node['allocated_utilisation']:.0%}",
            f"{node['measured_cpu']:.0%}",
            f"{node['measured_memory']:.0%}",
        )
    console.print(table)
    queues = Table(title=f"Queues (balancer backlog {report['backlog']})")
    queues.add_column("queue")
    queues.add_column("ready", justify="right")
    for queue, depth in report["queues"].items():
        queues.add_row(queue, str(depth))
    console.print(queues)


__all__ = ["collect", "register", "report_of", "run"]
