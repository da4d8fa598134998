"""The systems :mod:`benchmarks.pipeline` measures side by side.

* :class:`BosonSystem` — every Boson service its own OS process, submitted
  through the SDK;
* :class:`BareChain` — the same four broker hops with nothing on top (one
  process per stage, :func:`bare_stage`);
* :class:`CelerySystem` — a prefork Celery worker with ``rpc://`` results.

Each is a :class:`System`: started, sent tasks on the open loop's schedule,
stopped.
"""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aio_pika
import psutil
from aio_pika.abc import AbstractIncomingMessage

from boson.client import Client, TaskRequest
from boson_shared.contract.messages import new_id
from boson_shared.settings import BosonSettings
from tests.support.cluster import ROOT, ProcessCluster


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


class System(Protocol):
    name: str

    async def start(self) -> None: ...

    def send(self, count: int, due: Sequence[float], record: Callable[[int, float], None]) -> None:
        """Send ``count`` tasks now; call ``record(index, t)`` as each result arrives."""
        ...

    async def stop(self) -> None: ...


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


__all__ = [
    "BENCH_ENV",
    "BareChain",
    "BosonSystem",
    "CelerySystem",
    "System",
    "bare_queue",
    "bare_stage",
]
