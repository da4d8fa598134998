"""Soak: minutes of steady load through the five services; loss, duplicates, memory.

Run ``.venv/bin/python -m benchmarks.soak`` from the repo root against a
RabbitMQ (``--amqp-url``, default ``BOSON_TEST_AMQP_URL`` or
``amqp://guest:guest@127.0.0.1:5672/``). ``--seconds`` sets the length
(default 300); CI runs 60.

Every service is its own OS process (``python -m boson run …``: monitor,
scheduler, balancer, transfer and two executors). One client submits at a
fixed rate on an absolute schedule (``--rate`` tasks/s): mostly ``noop``
and ``forecast``, and one task in ``--big-every`` a ``stats`` over a CSV
above the inline limit, so the transfer service carries data all along.
Latency runs from a task's due time to its result at the client.

Memory is each service process's RSS after ``--warm-up`` seconds of load
(10 by default) and again at the end. The run prints throughput, p50/p99
latency, RSS per service, lost (no result) and duplicated (a result the
client showed twice), and exits 1 when anything was lost or duplicated or
some service's RSS grew by more than ``--max-growth`` (20% by default).
Everything runs in a fresh namespace that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boson.client import Client, TaskRequest
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.messages import TaskResult, new_id
from boson_shared.errors import TransientError
from boson_shared.runtime.consumer_spec import Emit
from tests.support.cluster import ProcessCluster

EXECUTORS = ("soak-1", "soak-2")
SERVICES = ("monitor", "scheduler", "balancer", "transfer", *EXECUTORS)


class SoakClient(Client):
    """Counts what it shows per task id and when, and keeps no results."""

    shown: Counter[str]
    arrived: dict[str, float]

    async def start(self) -> None:
        self.shown = Counter()
        self.arrived = {}
        await super().start()

    async def _on_result(self, result: TaskResult) -> Sequence[Emit]:
        dropped = self.duplicates_dropped
        emits = await super()._on_result(result)
        if self.duplicates_dropped == dropped:
            self.shown[result.task_id] += 1
            self.arrived.setdefault(result.task_id, time.monotonic())
            if result.status != "succeeded":
                print(f"soak: task {result.task_id} failed: {result.error}", file=sys.stderr)
        self.take_result(result.task_id)  # a long run keeps the client flat
        return emits


async def _submit(client: Client, batch: list[TaskRequest], within_s: float = 120.0) -> None:
    """Submit, retrying through a broker outage; the task ids make a repeat harmless."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await client.submit_many(batch)
            return
        except TransientError as error:
            if time.monotonic() > deadline:
                raise
            print(f"soak: submit retried ({type(error).__name__})", file=sys.stderr)
            await asyncio.sleep(1.0)


def _csv(rows: int) -> bytes:
    lines = ["a,b,c"] + [f"{i},{i * 0.5},{(i * 7) % 13}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _rss(cluster: ProcessCluster) -> dict[str, int]:
    return {
        name: psutil.Process(cluster.processes[name].process.pid).memory_info().rss
        for name in SERVICES
    }


async def _sweep(url: str, namespace: str) -> None:
    """Delete the run's queues and exchanges (where rabbitmqctl sees the broker)."""
    if not shutil.which("rabbitmqctl"):
        return
    transport = AmqpTransport(url, connection_name="boson-soak-cleanup")
    await transport.connect()
    try:
        for what in ("queues", "exchanges"):
            listed = await asyncio.to_thread(
                subprocess.run,
                ["rabbitmqctl", f"list_{what}", "name", "--formatter", "json", "-q"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            out = listed.stdout
            with contextlib.suppress(ValueError):
                for row in json.loads(out or "[]"):
                    name = str(row["name"])
                    if name.startswith(f"{namespace}."):
                        if what == "queues":
                            await transport.delete_queue(name)
                        else:
                            await transport.delete_exchange(name)
    finally:
        await transport.close()


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"soak-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="boson-soak-"))
    cluster = ProcessCluster(args.amqp_url, namespace, log_dir)
    cluster.extra_env["BOSON_LOG_LEVEL"] = "WARNING"
    cluster.extra_env.update(pair.split("=", 1) for pair in args.service_env)
    big = _csv(args.big_rows)
    try:
        for service in ("monitor", "scheduler", "balancer", "transfer"):
            cluster.start(service)
        for node in EXECUTORS:
            cluster.start("executor", "--node-id", node, "--slots", "8", name=node)
        await cluster.wait_healthy()
        client = await SoakClient.connect(settings=cluster.settings())
        assert isinstance(client, SoakClient)
        due: dict[str, float] = {}
        try:
            async with asyncio.timeout(30):
                while True:
                    snapshot = await client.snapshot(10)
                    if sum(1 for node in snapshot.nodes if node.alive) >= len(EXECUTORS):
                        break
            interval = 1.0 / args.rate
            start = time.monotonic()
            end = start + args.seconds
            rss_start: dict[str, int] | None = None
            number = 0
            while (now := time.monotonic()) < end:
                if rss_start is None and now - start >= args.warm_up:
                    rss_start = _rss(cluster)
                # Everything due by now goes out as one batch (open loop).
                batch: list[TaskRequest] = []
                times: list[float] = []
                while start + number * interval <= now:
                    times.append(start + number * interval)
                    if number % args.big_every == args.big_every - 1:
                        batch.append(TaskRequest("stats", data=big, task_id=new_id()))
                    elif number % 2:
                        batch.append(
                            TaskRequest(
                                "forecast", params={"values": [1, 2, 3, 5]}, task_id=new_id()
                            )
                        )
                    else:
                        batch.append(TaskRequest("noop", params={"echo": number}, task_id=new_id()))
                    number += 1
                if batch:
                    for request, at in zip(batch, times, strict=True):
                        assert request.task_id is not None
                        due[request.task_id] = at
                    await _submit(client, batch)
                await asyncio.sleep(max(0.0, start + number * interval - time.monotonic()))
            submitted_s = time.monotonic() - start
            deadline = time.monotonic() + args.drain
            for _ in range(int(args.drain / 0.2)):
                if time.monotonic() > deadline or all(client.shown[t] for t in due):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # a late duplicate would show now
            rss_end = _rss(cluster)
        finally:
            await client.close()
        assert rss_start is not None, "the run is shorter than its warm-up"
        latencies = sorted(client.arrived[t] - due[t] for t in due if t in client.arrived)
        last = max(client.arrived.values(), default=start)
        growth = {name: rss_end[name] / rss_start[name] - 1 for name in SERVICES}
        alive = {name: cluster.processes[name].process.poll() is None for name in SERVICES}
        return {
            "seconds": args.seconds,
            "rate": args.rate,
            "submitted": len(due),
            "submitted_in_s": round(submitted_s, 1),
            "completed": len(latencies),
            "throughput_per_s": round(len(latencies) / max(last - start, 1e-9), 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p99_ms": (
                round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1)
                if latencies
                else None
            ),
            "lost": sum(1 for t in due if client.shown[t] == 0),
            "duplicated": sum(n - 1 for n in client.shown.values() if n > 1)
            + sum(n for t, n in client.shown.items() if t not in due),
            "duplicates_dropped_by_client": client.duplicates_dropped,
            "rss_start_mib": {k: round(v / 2**20, 1) for k, v in rss_start.items()},
            "rss_end_mib": {k: round(v / 2**20, 1) for k, v in rss_end.items()},
            "rss_growth_pct": {k: round(100 * v, 1) for k, v in growth.items()},
            "max_rss_growth_pct": round(100 * max(growth.values()), 1),
            "services_alive": all(alive.values()),
            "logs": str(log_dir),
        }
    finally:
        await asyncio.to_thread(cluster.stop_all)
        with contextlib.suppress(Exception):
            await _sweep(args.amqp_url, namespace)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("BOSON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the run")
    parser.add_argument("--rate", type=float, default=40.0, help="tasks submitted per second")
    parser.add_argument("--warm-up", type=float, default=10.0, help="seconds before RSS is read")
    parser.add_argument("--max-growth", type=float, default=0.20, help="fail above this RSS growth")
    parser.add_argument("--big-every", type=int, default=100, help="one task in N carries a blob")
    parser.add_argument("--big-rows", type=int, default=22_000, help="rows of that CSV (~320 KB)")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for stragglers")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra BOSON_ setting for every service (repeatable), e.g. BOSON_DEDUP_CAPACITY=2000",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.seconds <= args.warm_up:
        parser.error("--seconds must be longer than --warm-up")
    report = asyncio.run(soak(args))
    print(
        f"soak: {report['submitted']} tasks in {report['seconds']:.0f}s at {report['rate']:g}/s; "
        f"throughput {report['throughput_per_s']}/s; "
        f"latency p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms"
    )
    for name in SERVICES:
        print(
            f"soak: {name:10} RSS {report['rss_start_mib'][name]:7.1f} MiB → "
            f"{report['rss_end_mib'][name]:7.1f} MiB ({report['rss_growth_pct'][name]:+.1f}%)"
        )
    print(f"soak: lost {report['lost']}, duplicated {report['duplicated']}")
    print(json.dumps(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failures = []
    if report["lost"]:
        failures.append(f"{report['lost']} tasks lost")
    if report["duplicated"]:
        failures.append(f"{report['duplicated']} results duplicated")
    if report["max_rss_growth_pct"] > 100 * args.max_growth:
        limit = 100 * args.max_growth
        failures.append(f"RSS grew {report['max_rss_growth_pct']}% (limit {limit:g}%)")
    if not report["services_alive"]:
        failures.append("a service died")
    if failures:
        print(f"soak: FAILED: {'; '.join(failures)}", file=sys.stderr)
        return 1
    print("soak: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
