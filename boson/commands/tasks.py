"""``boson task ID``, ``boson tasks``, ``boson result ID``, ``boson logs ID``: read the task record.

With a broker configured (``BOSON_BROKER_URL`` or ``--broker``) they ask the
monitors over the bus; without one they read the record's database directly
(``--database``, ``BOSON_DATABASE_URL``, else the default SQLite file that an
in-process ``boson submit`` or ``boson demo`` wrote).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import msgpack
from rich.console import Console
from rich.table import Table

from boson.client import Client
from boson.commands.broker import settings_with_broker
from boson.records import DEFAULT_TIMEOUT_S, TaskPage
from boson_shared.contract.messages import TaskRecord
from boson_shared.errors import ConfigError, InvalidQueryError
from boson_shared.record.location import async_url, default_database_url, sqlite_path
from boson_shared.record.store import RecordStore, TaskQuery
from boson_shared.runtime.bounded_run import run_bounded

T = TypeVar("T")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    task = subparsers.add_parser("task", help="one task's record: state and timeline")
    task.add_argument("task_id")
    _common(task)
    task.set_defaults(func=run_task)

    tasks = subparsers.add_parser("tasks", help="list task records (newest first)")
    tasks.add_argument(
        "--state",
        help="submitted, pending, placed, assigned, started, succeeded, failed, cancelled",
    )
    tasks.add_argument("--handler")
    tasks.add_argument("--node")
    tasks.add_argument("--tenant", help="that tenant's tasks only")
    tasks.add_argument("--since", help="1h, 30m, 2d, an ISO time or epoch seconds")
    tasks.add_argument("--limit", type=int, default=50)
    tasks.add_argument("--cursor", help="continue after a previous page")
    _common(tasks)
    tasks.set_defaults(func=run_tasks)

    result = subparsers.add_parser("result", help="a finished task's output")
    result.add_argument("task_id")
    _common(result)
    result.set_defaults(func=run_result)

    logs = subparsers.add_parser("logs", help="what a task's handler printed or logged")
    logs.add_argument("task_id")
    _common(logs)
    logs.set_defaults(func=run_logs)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="amqp://… (default BOSON_BROKER_URL)")
    parser.add_argument(
        "--database", help="read this database directly (default BOSON_DATABASE_URL)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)


# -- where the record is read from ---------------------------------------------


def _read(
    args: argparse.Namespace,
    over_bus: Callable[[Client], Awaitable[T]],
    direct: Callable[[RecordStore], Awaitable[T]],
) -> T:
    settings = settings_with_broker(args.broker)
    if settings.broker_url is not None and args.database is None:

        async def bus() -> T:
            client = await Client.connect(settings=settings)
            try:
                return await over_bus(client)
            finally:
                await client.close()

        return run_bounded(bus())
    url = args.database
    if url is None:
        configured = settings.database_url
        url = configured.get_secret_value() if configured is not None else default_database_url()
    path = sqlite_path(async_url(url))
    if path is not None and not path.exists():
        raise ConfigError(
            f"no task record at {path}: nothing ran here yet "
            "(set BOSON_BROKER_URL to ask a running cluster)"
        )

    async def local() -> T:
        store = RecordStore.open(url)
        try:
            return await direct(store)
        finally:
            await store.close()

    return run_bounded(local())


read_record = _read
"""Read the record over the bus when a broker is configured, else directly."""


# -- the commands ----------------------------------------------------------------


def run_task(args: argparse.Namespace) -> int:
    record = _read(
        args,
        lambda client: client.get(args.task_id, timeout=args.timeout),
        lambda store: store.get(args.task_id),
    )
    if args.json:
        _print_json(_jsonable(record))
    else:
        render_task(record)
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    query = TaskQuery(
        state=args.state,
        handler=args.handler,
        node_id=args.node,
        tenant=args.tenant,
        since=parse_since(args.since) if args.since is not None else None,
        limit=args.limit,
        cursor=args.cursor,
    )

    async def direct(store: RecordStore) -> TaskPage:
        page = await store.list(query)
        return TaskPage(page.records, page.next_cursor)

    page = _read(
        args,
        lambda client: client.tasks(
            state=query.state,
            handler=query.handler,
            node_id=query.node_id,
            tenant=query.tenant,
            since=query.since,
            limit=query.limit,
            cursor=query.cursor,
            timeout=args.timeout,
        ),
        direct,
    )
    if args.json:
        _print_json(
            {
                "tasks": [_jsonable(r, output=False) for r in page.records],
                "next_cursor": page.next_cursor,
            }
        )
    else:
        render_tasks(page)
    return 0


def run_result(args: argparse.Namespace) -> int:
    async def over_bus(client: Client) -> tuple[TaskRecord, Any]:
        record = await client.get(args.task_id, timeout=args.timeout)
        if record.output_ref is None:
            return record, record.output
        blob = await asyncio.wait_for(client.fetcher.fetch(record.output_ref), args.timeout)
        return record, msgpack.unpackb(blob, raw=False, strict_map_key=False)

    async def direct(store: RecordStore) -> tuple[TaskRecord, Any]:
        record = await store.get(args.task_id, timeline=False)
        if record.output_ref is not None:
            raise ConfigError(
                f"task {record.task_id}'s output is in the transfer store "
                f"({record.output_ref.digest[:12]}…): set BOSON_BROKER_URL to fetch it"
            )
        return record, record.output

    record, output = _read(args, over_bus, direct)
    if record.state == "failed":
        assert record.error is not None
        message = f"task {record.task_id} failed: {record.error.error_type}: {record.error.message}"
        _no_result(args, record, message)
        return 1
    if record.state == "cancelled":
        _no_result(args, record, f"task {record.task_id} was cancelled")
        return 1
    if record.state != "succeeded":
        _no_result(args, record, f"task {record.task_id} has no result yet (it is {record.state})")
        return 3
    if record.output_omitted:
        print(f"boson: task {record.task_id}'s output was too large to keep", file=sys.stderr)
        return 1
    if args.json:
        _print_json({"task_id": record.task_id, "state": record.state, "output": output})
    elif isinstance(output, str):
        print(output)
    else:
        _print_json(output)
    return 0


def run_logs(args: argparse.Namespace) -> int:
    """Print the task's captured output (kept with its record once it finished)."""
    record = _read(
        args,
        lambda client: client.get(args.task_id, timeout=args.timeout),
        lambda store: store.get(args.task_id, timeline=False),
    )
    if args.json:
        _print_json(
            {
                "task_id": record.task_id,
                "state": record.state,
                "progress": record.progress,
                "progress_message": record.progress_message,
                "logs": record.logs,
            }
        )
        return 0
    if record.logs is None:
        finished = record.state in ("succeeded", "failed", "cancelled")
        reason = (
            "it printed nothing" if finished else f"it is {record.state}: logs come with its end"
        )
        print(f"boson: no logs for task {record.task_id} ({reason})", file=sys.stderr)
        return 0 if finished else 3
    sys.stdout.write(record.logs if record.logs.endswith("\n") else record.logs + "\n")
    return 0


# -- parsing and printing ------------------------------------------------------------


def _no_result(args: argparse.Namespace, record: TaskRecord, message: str) -> None:
    """Say why ``boson result`` has no output: a JSON object with ``--json``, else stderr."""
    if args.json:
        _print_json({"task_id": record.task_id, "state": record.state, "error": message})
    else:
        print(f"boson: {message}", file=sys.stderr)


def parse_since(text: str, now: float | None = None) -> float:
    """``1h``/``30m``/``2d`` ago, an ISO time, or epoch seconds; :class:`InvalidQueryError`."""
    now = time.time() if now is None else now
    match = _DURATION.match(text.strip())
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value >= 0 and value == value and value != float("inf"):
            return value
        raise InvalidQueryError(f"--since {text!r} is not a time")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as e:
        raise InvalidQueryError(
            f"--since {text!r}: give 1h, 30m, 2d, an ISO time or epoch seconds"
        ) from e


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at).isoformat(sep=" ", timespec="milliseconds")


def render_task(record: TaskRecord) -> None:
    console = Console()
    colour = {"failed": "red", "cancelled": "yellow"}.get(record.state)
    state = f"[{colour}]{record.state}[/{colour}]" if colour else record.state
    console.print(f"task [bold]{record.task_id}[/bold]  {state}")
    details = [
        ("handler", record.handler),
        ("tenant", record.tenant),
        ("priority", None if record.priority is None else str(record.priority)),
        ("submitter", record.submitter),
        ("node", record.node_id),
        ("strategy", record.strategy),
        ("attempts", str(record.attempts)),
        ("dispatches", str(record.dispatches)),
    ]
    if record.demand is not None:
        d = record.demand
        details.append(("demand", f"cpu={d.cpu:g} memory={d.memory:g} gpu={d.gpu:g}"))
    if record.usage is not None:
        u = record.usage
        details.append(("usage", f"wall {u.wall_s:.3f}s, cpu {u.cpu_s:.3f}s"))
    if record.error is not None:
        details.append(("error", f"{record.error.error_type}: {record.error.message}"))
    if record.progress is not None:
        text = f"{record.progress:.0%}"
        details.append(("progress", f"{text} {record.progress_message}".rstrip()))
    if record.logs is not None:
        details.append(("logs", f"{len(record.logs)} characters (boson logs {record.task_id})"))
    for name, value in details:
        if value is not None:
            console.print(f"  {name:<11}{value}")
    table = Table(title="Timeline")
    for column in ("stage", "at", "+s", "node", "by"):
        table.add_column(column, justify="right" if column == "+s" else "left")
    for entry in record.timeline:
        table.add_row(
            entry.stage,
            _when(entry.at),
            f"{entry.at - record.submitted_at:.3f}",
            entry.node_id or "-",
            entry.source or "-",
        )
    console.print(table)


def render_tasks(page: TaskPage) -> None:
    console = Console()
    table = Table(title=f"Tasks ({len(page.records)})")
    for column in ("task", "state", "handler", "tenant", "node", "submitted", "took", "error"):
        table.add_column(column, justify="right" if column == "took" else "left")
    for record in page.records:
        took = "-"
        if record.finished_at is not None:
            took = f"{record.finished_at - record.submitted_at:.3f}s"
        table.add_row(
            record.task_id,
            record.state,
            record.handler or "-",
            record.tenant or "-",
            record.node_id or "-",
            _when(record.submitted_at),
            took,
            record.error.error_type if record.error is not None else "",
        )
    console.print(table)
    if page.next_cursor is not None:
        console.print(f"more: --cursor '{page.next_cursor}'")


def _jsonable(record: TaskRecord, *, output: bool = True) -> dict[str, Any]:
    body = record.model_dump(mode="python", exclude={"output"})
    if output:
        body["output"] = record.output
    return body


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_fallback))


def _fallback(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return repr(value)


__all__ = [
    "parse_since",
    "read_record",
    "register",
    "render_task",
    "render_tasks",
    "run_logs",
    "run_result",
    "run_task",
]
