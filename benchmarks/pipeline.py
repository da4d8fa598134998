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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aio_pika
import psutil
from aio_pika.abc import AbstractIncomingMessage

from boson.client import Client, TaskRequest
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.messages import new_id
from boson_shared.settings import BosonSettings
from tests.support.cluster import ROOT, ProcessCluster
from tests.support.rabbit_cluster import RabbitCluster, make_cluster

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
SYSTEMS = ("boson", "bare", "celery")
OFFERED_MAX_RATE = 20_000.0
"""Offered rate of the max runs: more than any of the three can carry here."""
TICK_S = 0.002


class System(Protocol):
    name: str

    async def start(self) -> None: ...

    def send(self, count: int, due: Sequence[float], record: Callable[[int, float], None]) -> None:
        """Send ``count`` tasks now; call ``record(index, t)`` as each result arrives."""
        ...

    async def stop(self) -> None: ...


@dataclass
class Run:
    """Due and done times of one open-loop run."""

    due: list[float]
    done: list[float | None]

    @property
    def received(self) -> int:
        return sum(1 for t in self.done if t is not None)

    def throughput(self) -> float:
        finished = [t for t in self.done if t is not None]
        if not finished:
            return 0.0
        return len(finished) / (max(finished) - self.due[0])

    def latencies_ms(self) -> list[float]:
        return [(t - d) * 1000 for d, t in zip(self.due, self.done, strict=True) if t is not None]


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

BENCH_ENV = {
    # Production timings, not the test cluster's shortened ones.
    "BOSON_HEARTBEAT_INTERVAL_S": "1.0",
    "BOSON_SNAPSHOT_INTERVAL_S": "1.0",
    "BOSON_MISSED_HEARTBEATS": "3",
    "BOSON_RETRY_DELAYS_MS": "[1000,5000,30000]",
    "BOSON_RETARGET_AFTER_S": "2.0",
    "BOSON_DRAIN_GRACE_S": "10",
    "BOSON_LOG_LEVEL": "INFO",
}


Batching = tuple[int, int, int, int, float]
"""Per service: items handled, deliveries, items published, envelopes, confirm seconds."""


class BosonSystem:
    name = "boson"
    queue_type = BosonSettings().queue_type

    def __init__(
        self, url: str, namespace: str, log_dir: Path, executors: int, schedulers: int = 1
    ) -> None:
        self.cluster = ProcessCluster(url, namespace, log_dir, extra_env=dict(BENCH_ENV))
        self.executors = executors
        self.schedulers = schedulers
        self.client: Client | None = None
        self.variant: dict[str, str] = {}

    async def start(self) -> None:
        for service in ("monitor", "balancer"):
            self.cluster.extra_env["BOSON_INSTANCE_ID"] = f"{service}-1"
            self.cluster.start(service)
        for k in range(1, self.schedulers + 1):
            self.cluster.extra_env["BOSON_INSTANCE_ID"] = f"scheduler-{k}"
            self.cluster.start("scheduler", name=f"scheduler-{k}")
        for k in range(1, self.executors + 1):
            self.cluster.extra_env["BOSON_INSTANCE_ID"] = f"executor-{k}"
            self.cluster.start("executor", "--node-id", f"bench-{k}", name=f"executor-{k}")
        await self.cluster.wait_healthy()
        # The client takes the variant's settings too (those it has).
        overrides: dict[str, object] = {
            key.removeprefix("BOSON_").lower(): value
            for key, value in self.variant.items()
            if key.removeprefix("BOSON_").lower() in BosonSettings.model_fields
        }
        self.client = await Client.connect(
            settings=self.cluster.settings(retry_delays_ms=(1000, 5000, 30000), **overrides),
            client_id="bench-client",
        )
        async with asyncio.timeout(60):
            while True:
                snapshot = await self.client.snapshot(10)
                if sum(1 for node in snapshot.nodes if node.alive) >= self.executors:
                    break

    def send(self, count: int, due: Sequence[float], record: Callable[[int, float], None]) -> None:
        client = self.client
        assert client is not None
        ids = [new_id() for _ in range(count)]
        for index, task_id in enumerate(ids):
            waiter = asyncio.ensure_future(client.result(task_id))

            def arrived(
                future: asyncio.Future[Any], index: int = index, task_id: str = task_id
            ) -> None:
                if not future.cancelled() and future.exception() is None:
                    record(index, time.perf_counter())
                    client.take_result(task_id)

            waiter.add_done_callback(arrived)
        requests = [TaskRequest("noop", task_id=task_id) for task_id in ids]
        sender = asyncio.ensure_future(client.submit_many(requests))
        _keep(sender)

    def pids(self) -> dict[str, int]:
        return {name: proc.process.pid for name, proc in self.cluster.processes.items()}

    async def batching(self) -> dict[str, Batching]:
        """Per service: (items handled, deliveries, items published, envelopes published)."""
        out: dict[str, Batching] = {}
        for name, proc in self.cluster.processes.items():
            body = await asyncio.to_thread(proc.health)
            if not body:
                continue
            consumed = body.get("consumed", {})
            published = body.get("published", {})
            assert isinstance(consumed, dict)
            assert isinstance(published, dict)
            out[name] = (
                sum(int(q["handled"]) for q in consumed.values()),
                sum(int(q["deliveries"]) for q in consumed.values()),
                int(published.get("items", 0)),
                int(published.get("envelopes", 0)),
                float(published.get("confirm_seconds", 0.0)),
            )
        client = self.client
        if client is not None:
            stats = client.publisher_stats
            out["client"] = (0, 0, stats.items, stats.envelopes, stats.confirm_seconds)
        return out

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        await asyncio.to_thread(self.cluster.stop_all)


_background: set[asyncio.Future[Any]] = set()


def _keep(future: asyncio.Future[Any]) -> None:
    _background.add(future)
    future.add_done_callback(_background.discard)


# -- the bare aio-pika chain -------------------------------------------------


def bare_queue(namespace: str, stage: int) -> str:
    return f"{namespace}.bare.s{stage}"


async def bare_stage(url: str, namespace: str, stage: int, stages: int, queue_type: str) -> None:
    """One stage process: consume, publish one message onward (confirmed), ack."""
    connection = await aio_pika.connect(url)
    out = await connection.channel(publisher_confirms=True)
    inbound = await connection.channel()
    await inbound.set_qos(prefetch_count=100)
    args: dict[str, Any] = {"x-queue-type": queue_type}
    queue = await inbound.declare_queue(bare_queue(namespace, stage), durable=True, arguments=args)
    if stage < stages:
        await out.declare_queue(bare_queue(namespace, stage + 1), durable=True, arguments=args)
    exchange = out.default_exchange

    async def on_message(message: AbstractIncomingMessage) -> None:
        # aiormq runs each delivery in a task of its own: confirms pipeline.
        next_hop = bare_queue(namespace, stage + 1) if stage < stages else message.reply_to
        assert next_hop is not None
        await exchange.publish(
            aio_pika.Message(
                message.body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id=message.correlation_id,
                reply_to=message.reply_to,
            ),
            routing_key=next_hop,
        )
        await message.ack()

    await queue.consume(on_message)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await connection.close()


class BareChain:
    name = "bare"

    def __init__(
        self, url: str, namespace: str, log_dir: Path, stages: int, queue_type: str = "quorum"
    ) -> None:
        self.url = url
        self.queue_type = queue_type
        self.namespace = namespace
        self.log_dir = log_dir
        self.stages = stages
        self.processes: list[subprocess.Popen[bytes]] = []
        self.reply_queue = f"{namespace}.bare.reply"
        self.waiting: dict[str, tuple[int, Callable[[int, float], None]]] = {}
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> None:
        for stage in range(1, self.stages + 1):
            log = (self.log_dir / f"bare-{stage}.log").open("ab")
            self.processes.append(
                subprocess.Popen(  # noqa: ASYNC220 - starting returns at once
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.pipeline",
                        "--bare-stage",
                        str(stage),
                        "--bare-stages",
                        str(self.stages),
                        "--bare-queue-type",
                        self.queue_type,
                        "--namespace",
                        self.namespace,
                        "--amqp-url",
                        self.url,
                    ],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
            )
        for process in self.processes:
            assert process.stdout is not None
            line = await asyncio.to_thread(process.stdout.readline)
            if line.strip() != b"ready":
                raise RuntimeError("a bare stage failed to start; see its log")
        self.connection = await aio_pika.connect(self.url)
        publishing = await self.connection.channel(publisher_confirms=True)
        consuming = await self.connection.channel()
        await consuming.set_qos(prefetch_count=1000)
        reply = await consuming.declare_queue(
            self.reply_queue, durable=True, arguments={"x-queue-type": "classic"}
        )
        await reply.consume(self._on_reply)
        self.exchange = publishing.default_exchange

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        entry = self.waiting.pop(message.correlation_id or "", None)
        if entry is not None:
            index, record = entry
            record(index, time.perf_counter())
        await message.ack()

    def send(self, count: int, due: Sequence[float], record: Callable[[int, float], None]) -> None:
        exchange = self.exchange
        assert exchange is not None
        first = bare_queue(self.namespace, 1)
        for index in range(count):
            task_id = uuid.uuid4().hex
            self.waiting[task_id] = (index, record)
            body = json.dumps({"task_id": task_id, "handler": "noop"}).encode()
            message = aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id=task_id,
                reply_to=self.reply_queue,
            )
            _keep(asyncio.ensure_future(exchange.publish(message, routing_key=first)))

    async def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.connection is not None:
            await self.connection.close()

    def pids(self) -> dict[str, int]:
        return {f"stage-{k}": p.pid for k, p in enumerate(self.processes, 1)}

    def queues(self) -> list[str]:
        return [bare_queue(self.namespace, s) for s in range(1, self.stages + 1)] + [
            self.reply_queue
        ]


# -- Celery ------------------------------------------------------------------


class CelerySystem:
    """Celery runs its own client process; ``run`` replaces ``open_loop``."""

    name = "celery"

    def __init__(self, url: str, namespace: str, log_dir: Path) -> None:
        self.url = url
        self.queue = f"{namespace}.celery"
        self.log_dir = log_dir
        self.worker: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BENCH_CELERY_BROKER=self.url, BENCH_CELERY_QUEUE=self.queue, PYTHONPATH=str(ROOT)
        )
        return env

    async def start(self) -> None:
        celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
        log = (self.log_dir / "celery-worker.log").open("ab")
        self.worker = subprocess.Popen(  # noqa: ASYNC220 - starting returns at once
            [
                celery,
                "-A",
                "benchmarks.celery_noop",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
                "--queues",
                self.queue,
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        await self.run(1, 1.0)  # waits until the worker answers

    async def run(self, count: int, rate: float) -> Run:
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "benchmarks.celery_noop", str(count), str(rate)],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        return Run(data["due"], data["done"])

    def pids(self) -> dict[str, int]:
        if self.worker is None:
            return {}
        pids = {"worker": self.worker.pid}
        with contextlib.suppress(psutil.Error):
            for k, child in enumerate(psutil.Process(self.worker.pid).children(), 1):
                pids[f"worker-{k}"] = child.pid
        return pids

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.worker.wait, 30)
            except subprocess.TimeoutExpired:
                self.worker.kill()


# -- driving and reporting ---------------------------------------------------


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
