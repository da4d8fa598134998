"""``boson submit HANDLER``: run tasks and (optionally) wait for their results.

With a broker (``--broker`` or ``BOSON_BROKER_URL``) the tasks go to the
running services. With none, the whole pipeline starts in this process for
the duration of the command — a new user runs real tasks with nothing
installed — and the command always waits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from boson.client import Client, TaskRequest
from boson.launcher import embedded
from boson_shared.contract.messages import TaskResult
from boson_shared.errors import ConfigError
from boson_shared.settings import BosonSettings

MAX_COUNT = 1_000_000
MAX_INPUT = 4 * 1024 * 1024 * 1024
"""Inputs above the inline threshold travel through the transfer service; this
bound only keeps a mistaken path from being read into memory."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="submit tasks (in-process when no broker is configured)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("handler", help="task handler: stats, anomaly, forecast, burn, noop, …")
    parser.add_argument("--input", type=Path, help="file whose bytes are the task's data")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="handler parameter; VALUE is JSON when it parses, else a string (repeatable)",
    )
    parser.add_argument("--complexity", type=float, help="task complexity C")
    parser.add_argument("--data-size", type=float, help="task data size D (default: KiB of input)")
    parser.add_argument("--count", type=int, default=1, help="submit N copies")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-task timeout (s)")
    parser.add_argument("--wait", action="store_true", help="wait for and print the results")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    parser.add_argument("--broker", help="amqp://… (default BOSON_BROKER_URL; none: in-process)")
    parser.add_argument(
        "--handler-module", action="append", default=[], help="module with @handler functions"
    )
    parser.set_defaults(func=run)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param takes KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def build_requests(args: argparse.Namespace) -> list[TaskRequest]:
    if not 1 <= args.count <= MAX_COUNT:
        raise ConfigError(f"--count must be between 1 and {MAX_COUNT:,}")
    data = None
    if args.input is not None:
        size = args.input.stat().st_size
        if size > MAX_INPUT:
            raise ConfigError(f"{args.input} is {size:,} bytes; the limit is {MAX_INPUT:,}")
        data = args.input.read_bytes()
    params = parse_params(args.param)
    return [
        TaskRequest(
            handler=args.handler,
            data=data,
            params=params,
            complexity=args.complexity,
            data_size=args.data_size,
            timeout_s=args.timeout,
        )
        for _ in range(args.count)
    ]


def run(args: argparse.Namespace) -> int:
    requests = build_requests(args)
    settings = BosonSettings()
    if args.broker is not None:
        settings = settings.model_copy(update={"broker_url": SecretStr(args.broker)})
    results: list[TaskResult] | None
    if settings.broker_url is None:
        results = asyncio.run(_in_process(requests, args.handler_module, args.json))
    else:
        results = asyncio.run(_against_broker(settings, requests, args.wait, args.json))
    if results is None:
        return 0
    _print(results, args.json)
    return 0 if all(r.status == "succeeded" for r in results) else 1


async def _in_process(
    requests: list[TaskRequest], handler_modules: list[str], quiet: bool
) -> list[TaskResult]:
    async with embedded(handler_modules=handler_modules) as client:
        handles = await client.submit_many(requests)
        return await _collect(client, [h.task_id for h in handles], quiet)


async def _against_broker(
    settings: BosonSettings, requests: list[TaskRequest], wait: bool, quiet: bool
) -> list[TaskResult] | None:
    client = await Client.connect(settings=settings)
    try:
        handles = await client.submit_many(requests)
        if not wait:
            for handle in handles:
                print(handle.task_id)
            return None
        return await _collect(client, [h.task_id for h in handles], quiet)
    finally:
        await client.close()


async def _collect(client: Client, task_ids: list[str], quiet: bool) -> list[TaskResult]:
    """Wait for every result, with a progress bar on a terminal when there are many."""
    show = len(task_ids) > 1 and not quiet and sys.stderr.isatty()
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    ) as progress:
        bar = progress.add_task("tasks", total=len(task_ids))
        results: list[TaskResult] = []
        for future in asyncio.as_completed([client.result(t) for t in task_ids]):
            results.append(await future)
            progress.advance(bar)
    order = {task_id: i for i, task_id in enumerate(task_ids)}
    return sorted(results, key=lambda r: order[r.task_id])


def _print(results: list[TaskResult], as_json: bool) -> None:
    for result in results:
        if as_json:
            print(json.dumps(result.model_dump(mode="json", exclude={"kind"})))
        elif result.status == "succeeded":
            print(f"{result.task_id} succeeded on {result.node_id}: {json.dumps(result.output)}")
        else:
            assert result.error is not None
            print(
                f"{result.task_id} failed after {result.attempts} attempt(s): "
                f"{result.error.error_type}: {result.error.message}"
            )


__all__ = ["build_requests", "parse_params", "register", "run"]
