"""Pipeline benchmark: Boson end to end against a bare aio-pika chain and Celery.

Run ``.venv/bin/python -m benchmarks.pipeline`` from the repo root (needs the
``bench`` extra and a RabbitMQ; ``--amqp-url``, default
``BOSON_BENCH_AMQP_URL`` or ``amqp://guest:guest@127.0.0.1:5672/``).

Everything is measured at the client, open loop: tasks are sent on a
schedule (``rate``/s) whatever the results are doing, and a task's latency
runs from when it was *due* to when its result arrived, so a stalled client
cannot hide queueing (no coordinated omission). For each system:

* **max**: ``--tasks`` no-op tasks offered faster than any of them can go;
  throughput is results received ÷ (last result − first send).
* **latency**: ``--latency-seconds`` of tasks offered at half that system's
  max rate; p50 / p99 of submit → result. With ``--common-rate R``, also at
  the same R tasks/s for every system (a faster system's half rate is a
  heavier load than a slower one's).
* **idle**: ``--idle-samples`` single tasks, one at a time on a quiet
  pipeline; the median.

The three systems:

* **boson** — every service its own OS process (``python -m boson run …``:
  monitor, scheduler, balancer, two executors), everything encrypted,
  submitted through the SDK (``Client.submit_many``); results come back on
  the client's reply queue.
* **bare** — the same four broker hops with nothing on top: client →
  stage 1 → stage 2 → stage 3 (the worker) → client, one process per stage,
  one persistent message per task per hop, confirms pipelined (a task per
  delivery: publish, await the confirm, ack), prefetch 100; the stage
  queues are quorum like Boson's work queues, the reply queue classic
  (Boson's client reply queue is quorum, which costs it a little here).
* **celery** — a prefork worker with 2 processes, ``rpc://`` results, a
  no-op task, on the same broker.

With ``--cluster``, every Boson run is made twice: on the broker of
``--amqp-url`` and on a fresh three-node RabbitMQ cluster started on this
machine for the benchmark (``tests/support/rabbit_cluster.py``, needs root
and ``rabbitmq-server``; stopped and deleted at the end), where the quorum
queues are replicated three times. ``--schedulers 1 3`` runs Boson with one
scheduler and with three competing for the submit queue.

Rounds alternate the systems (``--repeats``), since the machine is shared
and noisy. Everything runs in a fresh namespace, and every queue and
exchange it declared is deleted at the end. ``--profile DIR`` records each
Boson service with py-spy during the first round's runs, in ``DIR/<phase>``
for ``boson`` and ``DIR/<variant>/<phase>`` for each ``--boson-variant``.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.pipeline_systems import (
    BareChain,
    Batching,
    BosonSystem,
    CelerySystem,
    Run,
    System,
    bare_stage,
)
from boson_shared.bus.amqp import AmqpTransport
from tests.support.rabbit_cluster import RabbitCluster, make_cluster

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
SYSTEMS = ("boson", "bare", "celery")
OFFERED_MAX_RATE = 20_000.0
"""Offered rate of the max runs: more than any of the three can carry here."""
TICK_S = 0.002


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def open_loop(system: System, count: int, rate: float, timeout: float) -> Run:
    """Offer ``count`` tasks at ``rate``/s; wait (bounded) for every result."""
    loop = asyncio.get_running_loop()
    done: list[float | None] = [None] * count
    due: list[float] = []
    remaining = count
    all_done = loop.create_future()

    def record(index: int, when: float) -> None:
        nonlocal remaining
        if done[index] is None:
            done[index] = when
            remaining -= 1
            if remaining == 0 and not all_done.done():
                all_done.set_result(None)

    start = time.perf_counter()
    sent = 0
    while sent < count:
        target = min(count, int((time.perf_counter() - start) * rate) + 1)
        if target > sent:
            batch_due = [start + i / rate for i in range(sent, target)]
            due.extend(batch_due)
            first = sent

            def shifted(index: int, when: float, first: int = first) -> None:
                record(first + index, when)

            system.send(target - sent, batch_due, shifted)
            sent = target
        await asyncio.sleep(TICK_S)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done, timeout)
    return Run(due, done)


async def idle_latency(system: System, samples: int) -> float:
    """Median ms of single tasks sent one at a time to an idle pipeline."""
    times: list[float] = []
    for _ in range(samples):
        await asyncio.sleep(0.05)
        run = await open_loop(system, 1, 1.0, 10.0)
        times.extend(run.latencies_ms())
    return statistics.median(times) if times else float("nan")


# -- Boson -------------------------------------------------------------------


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) so far of each process; the broker's as ``broker``."""
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            seconds[name] = times.user + times.system
            seconds[f"{name}:sys"] = times.system
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "beam.smp":
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                seconds["broker"] = seconds.get("broker", 0.0) + times.user + times.system
    return seconds


def cpu_per_task(before: dict[str, float], after: dict[str, float], tasks: int) -> str:
    """µs of CPU per task of each process between two readings (the machine's
    load does not inflate these, unlike wall-clock rates)."""
    cost = {k: (after[k] - before[k]) / max(1, tasks) * 1e6 for k in after if k in before}
    processes = {k: v for k, v in cost.items() if not k.endswith(":sys")}
    own = sum(v for k, v in processes.items() if k != "broker")
    kernel = sum(v for k, v in cost.items() if k.endswith(":sys"))
    parts = ", ".join(f"{k} {v:.0f}" for k, v in processes.items())
    return f"CPU µs/task: {parts}; all but broker {own:.0f} (of it in the kernel {kernel:.0f})"


@dataclass
class Result:
    max_rate: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    common_p50: list[float] = field(default_factory=list)
    common_p99: list[float] = field(default_factory=list)
    """Latency at ``--common-rate``, the same offered rate for every system."""
    lost: int = 0


async def measure(
    system: BosonSystem | BareChain | CelerySystem,
    args: argparse.Namespace,
    result: Result,
    profile: Callable[[str, float], Any] | None = None,
) -> None:
    async def go(count: int, rate: float) -> Run:
        if isinstance(system, CelerySystem):
            return await system.run(count, rate)
        return await open_loop(system, count, rate, timeout=120)

    async def batching() -> dict[str, Batching]:
        return await system.batching() if isinstance(system, BosonSystem) else {}

    await go(args.warmup, OFFERED_MAX_RATE)
    pids = {**system.pids(), "client": os.getpid()}
    batches = [await batching()]
    if isinstance(system, CelerySystem):
        pids.pop("client")  # its client is a process of its own, not measured
    before = cpu_seconds(pids)
    stop_profile = profile("max", args.tasks / 2000 + 1) if profile else None
    run = await go(args.tasks, OFFERED_MAX_RATE)
    if stop_profile is not None:
        stop_profile()
    after = cpu_seconds(pids)
    batches.append(await batching())
    rate = run.throughput()
    result.lost += args.tasks - run.received
    half = max(1.0, rate / 2)
    await asyncio.sleep(0.5)
    stop_profile = profile("latency", args.latency_seconds) if profile else None
    before_half = cpu_seconds(pids)
    latency = await go(max(1, int(half * args.latency_seconds)), half)
    after_half = cpu_seconds(pids)
    batches.append(await batching())
    if stop_profile is not None:
        stop_profile()
    result.lost += len(latency.due) - latency.received
    if args.common_rate:
        await asyncio.sleep(0.5)
        common = await go(max(1, int(args.common_rate * args.latency_seconds)), args.common_rate)
        result.lost += len(common.due) - common.received
        at_common = common.latencies_ms()
        result.common_p50.append(percentile(at_common, 50))
        result.common_p99.append(percentile(at_common, 99))
    lat = latency.latencies_ms()
    result.max_rate.append(rate)
    result.p50.append(percentile(lat, 50))
    result.p99.append(percentile(lat, 99))
    if isinstance(system, CelerySystem):
        idle = [(await go(1, 1.0)).latencies_ms() for _ in range(args.idle_samples)]
        result.idle.append(statistics.median([x for row in idle for x in row] or [float("nan")]))
    else:
        result.idle.append(await idle_latency(system, args.idle_samples))
    print(
        f"  {system.name:<6} max {rate:8.0f} tasks/s   at {half:6.0f}/s p50 "
        f"{result.p50[-1]:6.1f} ms  p99 {result.p99[-1]:6.1f} ms   idle {result.idle[-1]:5.1f} ms"
        f"   lost {result.lost}",
        flush=True,
    )
    print(f"    max:  {cpu_per_task(before, after, args.tasks)}", flush=True)
    print(f"    half: {cpu_per_task(before_half, after_half, len(latency.due))}", flush=True)
    if batches[0]:
        print(f"    max:  items/envelope {items_per_envelope(batches[0], batches[1])}", flush=True)
        print(f"    half: items/envelope {items_per_envelope(batches[1], batches[2])}", flush=True)


def items_per_envelope(before: dict[str, Batching], after: dict[str, Batching]) -> str:
    """``service in/out (confirm)``: items per envelope consumed and published
    between two snapshots, and the mean publish → confirm round trip in ms."""

    def ratio(items: float, envelopes: float, scale: float = 1.0) -> str:
        return f"{items / envelopes * scale:.1f}" if envelopes else "-"

    parts = []
    for name, now in after.items():
        then = before.get(name, (0, 0, 0, 0, 0.0))
        d = [a - b for a, b in zip(now, then, strict=True)]
        confirm = ratio(d[4], d[3], 1000.0)
        parts.append(f"{name} {ratio(d[0], d[1])}/{ratio(d[2], d[3])} ({confirm})")
    return "in/out (confirm ms) " + ", ".join(parts)


def py_spy_profiler(pids: dict[str, int], out_dir: Path, seconds: float) -> Callable[[], Any]:
    """Start py-spy on each pid; the returned callable waits for the SVGs."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "200",
                "--format",
                "speedscope",
                "--output",
                str(out_dir / f"{name}.json"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    return lambda: [p.wait() for p in procs]


async def cleanup(url: str, namespace: str, extra_queues: Sequence[str]) -> int:
    """Delete every queue and exchange under ``namespace`` (rabbitmqctl when local)."""
    queues = set(extra_queues)
    exchanges: set[str] = set()
    if shutil.which("rabbitmqctl"):
        for what, target in (("queues", queues), ("exchanges", exchanges)):
            with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
                listed = subprocess.run(  # noqa: ASYNC221 - cleanup, nothing else runs
                    ["rabbitmqctl", f"list_{what}", "name", "--formatter", "json", "-q"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                ).stdout
                target.update(
                    row["name"] for row in json.loads(listed) if row["name"].startswith(namespace)
                )
    transport = AmqpTransport(url, connection_name="boson-bench-cleanup")
    await transport.connect()
    try:
        for queue in sorted(queues):
            await transport.delete_queue(queue)
        for exchange in sorted(exchanges):
            await transport.delete_exchange(exchange)
    finally:
        await transport.close()
    return len(queues) + len(exchanges)


def variants(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Boson runs to make: ``boson`` itself, plus ``--boson-variant`` A/B runs."""
    runs: dict[str, dict[str, str]] = {}
    if "boson" in args.only:
        runs["boson"] = {}
    for spec in args.boson_variant or ():
        label, _, assignments = spec.partition(":")
        env = dict(item.split("=", 1) for item in assignments.split(",") if item)
        runs[f"boson[{label}]"] = env
    return runs


async def bench(args: argparse.Namespace) -> int:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="boson-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before anything runs
    boson_runs = variants(args)
    # Each Boson run, per scheduler count and broker: (env, schedulers, on the cluster).
    layouts: dict[str, tuple[dict[str, str], int, bool]] = {}
    for name, env in boson_runs.items():
        for schedulers in args.schedulers:
            for on_cluster in (False, True) if args.cluster else (False,):
                label = name
                if len(args.schedulers) > 1:
                    label += f"/{schedulers}sch"
                if args.cluster:
                    label += "/3node" if on_cluster else "/1node"
                layouts[label] = (env, schedulers, on_cluster)
    systems = [*layouts, *(s for s in ("bare", "celery") if s in args.only)]
    results = {name: Result() for name in systems}
    rabbit: RabbitCluster | None = None
    if args.cluster:
        started = time.monotonic()
        rabbit = await asyncio.to_thread(make_cluster)
        print(
            f"three-node cluster up in {time.monotonic() - started:.1f}s: "
            f"{', '.join(node.name for node in rabbit.nodes)}",
            flush=True,
        )

    def make(name: str) -> BosonSystem | BareChain | CelerySystem:
        if name == "bare":
            return BareChain(
                args.amqp_url, namespace, log_dir, args.bare_stages, args.bare_queue_type
            )
        if name == "celery":
            return CelerySystem(args.amqp_url, namespace, log_dir)
        env, schedulers, on_cluster = layouts[name]
        url = rabbit.url if on_cluster and rabbit is not None else args.amqp_url
        boson = BosonSystem(url, namespace, log_dir, args.executors, schedulers)
        boson.name = name
        boson.variant = env
        boson.cluster.extra_env.update(env)
        return boson

    print(
        f"pipeline benchmark: namespace {namespace}, {os.cpu_count()} cores, "
        f"{args.tasks} tasks per max run, {args.latency_seconds:g}s at half rate, "
        f"{args.repeats} round(s); logs in {log_dir}",
        flush=True,
    )
    print(
        f"queue type: boson work queues {BosonSystem.queue_type}; "
        f"bare stage queues {args.bare_queue_type} "
        f"(reply queue classic; Boson's is quorum); celery classic (its default)",
        flush=True,
    )
    for name, env in boson_runs.items():
        if env:
            print(f"{name}: services run with {env}", flush=True)
    cleanup_queues = [
        *BareChain(args.amqp_url, namespace, log_dir, args.bare_stages).queues(),
        CelerySystem(args.amqp_url, namespace, log_dir).queue,
    ]
    try:
        for round_no in range(1, args.repeats + 1):
            print(f"round {round_no}", flush=True)
            order = systems if round_no % 2 else list(reversed(systems))
            for name in order:
                system = make(name)
                await system.start()
                try:
                    profile = None
                    if args.profile and name.startswith("boson") and round_no == 1:
                        pids = {**system.pids(), "client": os.getpid()}
                        where = Path(args.profile)
                        if name != "boson":
                            where /= name.removeprefix("boson[").removesuffix("]")

                        def profile(
                            phase: str,
                            secs: float,
                            pids: dict[str, int] = pids,
                            where: Path = where,
                        ) -> Any:
                            return py_spy_profiler(pids, where / phase, secs)

                    await measure(system, args, results[name], profile)
                finally:
                    await system.stop()
    finally:
        removed = await cleanup(args.amqp_url, namespace, cleanup_queues)
        print(f"cleaned up {removed} queues/exchanges under {namespace}", flush=True)
        if rabbit is not None:
            await asyncio.to_thread(rabbit.stop)
            print("three-node cluster stopped and deleted", flush=True)
    report(results)
    return 0


def report(results: dict[str, Result]) -> None:
    print()
    print(
        f"{'system':<20}{'max tasks/s':>12}{'(min..max)':>16}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'idle ms':>9}{'lost':>6}"
    )
    for name, r in results.items():
        if not r.max_rate:
            continue
        print(
            f"{name:<20}{statistics.median(r.max_rate):12.0f}"
            f"{f'{min(r.max_rate):.0f}..{max(r.max_rate):.0f}':>16}"
            f"{statistics.median(r.p50):9.1f}{statistics.median(r.p99):9.1f}"
            f"{statistics.median(r.idle):9.1f}{r.lost:6d}"
        )
    common = {name: r for name, r in results.items() if r.common_p99}
    if common:
        print()
        for name, r in common.items():
            print(
                f"{name:<20} at the common rate: p50 {statistics.median(r.common_p50):.1f} ms"
                f"  p99 {statistics.median(r.common_p99):.1f} ms"
            )
    for name, mine_r in results.items():
        if not name.startswith("boson") or not mine_r.max_rate:
            continue
        mine = statistics.median(mine_r.max_rate)
        for other in ("bare", "celery"):
            if other in results and results[other].max_rate:
                theirs = statistics.median(results[other].max_rate)
                print(f"{name} / {other}: {mine / theirs:.2f}x throughput")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-url", default=os.environ.get("BOSON_BENCH_AMQP_URL", DEFAULT_URL))
    parser.add_argument("--tasks", type=int, default=6000, help="tasks per max-rate run")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--idle-samples", type=int, default=20)
    parser.add_argument(
        "--common-rate",
        type=float,
        default=0.0,
        help="also measure latency with every system offered this many tasks/s (0: off)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="rounds, alternating order")
    parser.add_argument("--executors", type=int, default=2)
    parser.add_argument(
        "--schedulers", type=int, nargs="+", default=[1], help="run Boson with each count"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run Boson on one node and on a fresh three-node RabbitMQ cluster",
    )
    parser.add_argument("--bare-stages", type=int, default=3, help="3 stages = 4 broker hops")
    parser.add_argument(
        "--bare-queue-type",
        choices=["quorum", "classic"],
        default="quorum",
        help="the bare chain's stage queues (Boson's work queues are quorum)",
    )
    parser.add_argument("--only", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument(
        "--boson-variant",
        action="append",
        metavar="LABEL:KEY=VAL,…",
        help="also run Boson with these BOSON_ settings in its services (A/B, repeatable)",
    )
    parser.add_argument("--profile", help="py-spy speedscope profiles of boson's services here")
    parser.add_argument("--log-dir")
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--bare-stage", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.bare_stage is not None:
        asyncio.run(
            bare_stage(
                args.amqp_url,
                args.namespace,
                args.bare_stage,
                args.bare_stages,
                args.bare_queue_type,
            )
        )
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
