"""``boson cancel ID...``: stop tasks, queued or running, on a running cluster.

The cancel travels over the bus (``BOSON_BROKER_URL`` or ``--broker``), never
through the database. Per id it prints ``cancelled``, ``already-finished`` or
``unknown``; it exits 0 when every id was known, 1 when any was unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from boson.client import Client
from boson.commands.broker import add_cluster_arguments, cluster_settings
from boson.records import DEFAULT_TIMEOUT_S
from boson.steering import CancelOutcome
from boson_shared.runtime.bounded_run import run_bounded


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cancel = subparsers.add_parser("cancel", help="cancel tasks by id (queued or running)")
    cancel.add_argument("task_ids", nargs="+", metavar="ID")
    add_cluster_arguments(
        cancel, timeout_s=DEFAULT_TIMEOUT_S, json_help="one JSON object: id → outcome"
    )
    cancel.set_defaults(func=run_cancel)


def run_cancel(args: argparse.Namespace) -> int:
    settings = cluster_settings(args.broker, "boson cancel")

    async def cancel() -> dict[str, CancelOutcome]:
        async with asyncio.timeout(args.timeout + 30):
            client = await Client.connect(settings=settings)
            try:
                return await client.cancel(*args.task_ids, timeout=args.timeout)
            finally:
                await client.delete_queues()
                await client.close()

    outcomes = run_bounded(cancel())
    unknown = [task_id for task_id, outcome in outcomes.items() if outcome == "unknown"]
    if args.json:
        print(json.dumps(outcomes, indent=2))
    else:
        width = max(len(task_id) for task_id in outcomes)
        for task_id, outcome in outcomes.items():
            if outcome != "unknown":
                print(f"{task_id:<{width}}  {outcome}")
    for task_id in unknown:
        print(f"boson: unknown task {task_id!r}", file=sys.stderr)
    return 1 if unknown else 0


__all__ = ["register", "run_cancel"]
