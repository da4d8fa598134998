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

from pydantic import TypeAdapter, ValidationError

from boson.client import Client, TaskRequest
from boson.commands.broker import settings_with_broker
from boson.commands.waiting import INTERRUPTED_EXIT, Outcome, collect, interruptible, show_retry
from boson.launcher import embedded
from boson.task_building import DEFAULT_MAX_RETRIES
from boson_shared.contract.base import TenantName
from boson_shared.errors import BosonError, ConfigError, InvalidTaskError, NoAnswerError
from boson_shared.runtime.bounded_run import run_bounded
from boson_shared.scheduling.tenants import (
    DEFAULT_PRIORITY,
    DEFAULT_TENANT,
    PRIORITY_MAX,
    PRIORITY_MIN,
)
from boson_shared.settings import BosonSettings

WAIT_MARGIN_S = 60.0
IN_PROCESS_DRAIN_S = 1.0
DIAGNOSE_SNAPSHOT_S = 3.0
MAX_COUNT = 1_000_000
TENANT_NAME: TypeAdapter[str] = TypeAdapter(TenantName)
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
    parser.add_argument(
        "--tenant",
        default=DEFAULT_TENANT,
        help="the team or account the tasks count against (default %(default)s)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=DEFAULT_PRIORITY,
        help=f"within the tenant, higher goes first: {PRIORITY_MIN} to {PRIORITY_MAX} "
        "(default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per-task timeout (s)")
    parser.add_argument(
        "--wait", action="store_true", help="wait for the results, printing each as it arrives"
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        help="give up waiting after this many seconds (default: --timeout x (retries + 1) + 60)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        help="retry a task whose handler raised, up to N times (default: a handler's error "
        f"fails the task at once; dead nodes and timeouts are retried {DEFAULT_MAX_RETRIES} times)",
    )
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


def read_input(path: Path) -> bytes:
    """The bytes of ``--input``; a ConfigError naming the problem otherwise."""
    if path.is_dir():
        raise ConfigError(f"--input {path} is a directory; name a file")
    try:
        size = path.stat().st_size
        if size > MAX_INPUT:
            raise ConfigError(f"--input {path} is {size:,} bytes; the limit is {MAX_INPUT:,}")
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"--input {path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"--input {path}: cannot read it ({error.strerror})") from None


def build_requests(args: argparse.Namespace) -> list[TaskRequest]:
    if not 1 <= args.count <= MAX_COUNT:
        raise ConfigError(f"--count must be between 1 and {MAX_COUNT:,}")
    if not PRIORITY_MIN <= args.priority <= PRIORITY_MAX:
        raise InvalidTaskError(
            f"--priority {args.priority} is outside {PRIORITY_MIN}..{PRIORITY_MAX}; "
            "nothing submitted"
        )
    try:
        TENANT_NAME.validate_python(args.tenant)
    except ValidationError:
        raise InvalidTaskError(
            f"--tenant {args.tenant!r}: a tenant name is 1 to 64 letters, digits, '_', '.' "
            "or '-'; nothing submitted"
        ) from None
    data = None if args.input is None else read_input(args.input)
    params = parse_params(args.param)
    return [
        TaskRequest(
            handler=args.handler,
            data=data,
            params=params,
            complexity=args.complexity,
            data_size=args.data_size,
            timeout_s=args.timeout,
            max_retries=args.retries,
            tenant=args.tenant,
            priority=args.priority,
        )
        for _ in range(args.count)
    ]


def run(args: argparse.Namespace) -> int:
    requests = build_requests(args)
    settings = settings_with_broker(args.broker)
    wait_timeout = args.wait_timeout
    if wait_timeout is None:
        wait_timeout = (
            args.timeout * (1 + (DEFAULT_MAX_RETRIES if args.retries is None else args.retries))
            + WAIT_MARGIN_S
        )
    outcome: Outcome | None
    if settings.broker_url is None:
        outcome = run_bounded(_in_process(requests, args, wait_timeout))
    else:
        outcome = run_bounded(_against_broker(settings, requests, args, wait_timeout))
    if outcome is None:
        return 0
    if outcome.interrupted:
        return INTERRUPTED_EXIT
    if outcome.timed_out:
        return 3
    return 0 if outcome.all_succeeded else 1


async def _in_process(
    requests: list[TaskRequest], args: argparse.Namespace, wait_timeout: float
) -> Outcome:
    # Short drain: on Ctrl-C nothing of this process outlives the command anyway.
    settings = BosonSettings().model_copy(update={"drain_grace_s": IN_PROCESS_DRAIN_S})
    stop = asyncio.Event()
    with interruptible(stop.set):
        async with embedded(
            settings=settings, handler_modules=args.handler_module, notice=_say
        ) as client:
            client.on_retrying = show_retry
            arrivals = client.arrivals()
            handles = await client.submit_many(requests)
            ids = [h.task_id for h in handles]
            outcome = await collect(
                client, arrivals, ids, as_json=args.json, wait_timeout=wait_timeout, stop=stop
            )
            if outcome.interrupted:
                _say(
                    f"interrupted: {len(outcome.results)} of {len(ids)} finished; "
                    f"{len(outcome.pending)} still running are abandoned (in-process): "
                    f"{_some(outcome.pending)}"
                )
            elif outcome.timed_out:
                _say(
                    f"gave up after --wait-timeout {wait_timeout:g} s: {len(outcome.results)} of "
                    f"{len(ids)} finished; still out: {_some(outcome.pending)}"
                )
            return outcome


async def _against_broker(
    settings: BosonSettings,
    requests: list[TaskRequest],
    args: argparse.Namespace,
    wait_timeout: float,
) -> Outcome | None:
    stop = asyncio.Event()
    with interruptible(stop.set):
        return await _broker_session(settings, requests, args, wait_timeout, stop)


async def _broker_session(
    settings: BosonSettings,
    requests: list[TaskRequest],
    args: argparse.Namespace,
    wait_timeout: float,
    stop: asyncio.Event,
) -> Outcome | None:
    client = await Client.connect(settings=settings)
    try:
        if args.handler_module:
            _say(
                "note: --handler-module only loads handlers in-process; against a broker "
                "the executors must be started with it (`boson run executor --handler-module "
                f"{args.handler_module[0]}` or `boson run all --handler-module …`)"
            )
        schedulers = await client.submit_queue_consumers()
        if schedulers == 0 and args.wait:
            await client.delete_queues()  # nothing was submitted: nothing will come
            raise NoAnswerError(
                f"nothing consumes {client.names.submit_queue}: no scheduler runs on namespace "
                f"{settings.namespace!r} (start the services: `boson run all`); nothing submitted"
            )
        if schedulers == 0:
            _say(
                f"warning: nothing consumes {client.names.submit_queue}: the tasks wait there "
                "until a scheduler starts"
            )
        client.on_retrying = show_retry
        arrivals = client.arrivals()
        handles = await client.submit_many(requests)
        ids = [h.task_id for h in handles]
        if not args.wait:
            for task_id in ids:
                print(task_id)
            # Nothing will read this one-shot client's reply queue (results are
            # read from the task record: `boson result ID`), and it never expires.
            await client.delete_queues()
            return None
        outcome = await collect(
            client, arrivals, ids, as_json=args.json, wait_timeout=wait_timeout, stop=stop
        )
        if not outcome.pending:
            # Every result is in: nothing is left to read from this client's queues.
            await client.delete_queues()
        elif outcome.interrupted:
            _say(
                f"interrupted: {len(outcome.results)} of {len(ids)} finished; "
                f"{len(outcome.pending)} still running: {_some(outcome.pending)}; their results "
                f"wait in queue {client.names.client_queue(client.client_id)}"
            )
        else:
            _say(
                f"gave up after --wait-timeout {wait_timeout:g} s: {len(outcome.results)} of "
                f"{len(ids)} finished; still out: {_some(outcome.pending)}; "
                f"{await _diagnose(client)}"
            )
        return outcome
    finally:
        await client.close()


async def _diagnose(client: Client) -> str:
    """What is known about why results are missing: schedulers and live nodes."""
    facts = []
    try:
        schedulers = await client.submit_queue_consumers()
        facts.append(f"{schedulers} scheduler(s) consume the submit queue")
        snapshot = await client.snapshot(DIAGNOSE_SNAPSHOT_S)
        live = sum(1 for node in snapshot.nodes if node.alive)
        facts.append(f"{live} live node(s)" if live else "no live executor node")
    except TimeoutError:
        facts.append("no monitor answered, so which nodes are alive is unknown")
    except BosonError as error:
        facts.append(f"the broker could not be asked ({error})")
    return "; ".join(facts)


def _some(task_ids: list[str], limit: int = 10) -> str:
    shown = " ".join(task_ids[:limit])
    return shown + (f" … (+{len(task_ids) - limit} more)" if len(task_ids) > limit else "")


def _say(text: str) -> None:
    print(f"boson: {text}", file=sys.stderr, flush=True)


__all__ = ["build_requests", "parse_params", "read_input", "register", "run"]
