"""The dashboard under load: API latency at 1,000 nodes and 100,000 recorded tasks; CPU cost.

Run ``.venv/bin/python -m benchmarks.dashboard`` from the repo root against a
RabbitMQ (``--amqp-url``, default ``BOSON_TEST_AMQP_URL`` or
``amqp://guest:guest@127.0.0.1:5672/``), under the benchmark lock.

The monitor runs as its own process (``boson run monitor``), as in
production, its task record on a fresh PostgreSQL database (``--postgres``,
an account that may create databases; created and dropped here) filled with
``--tasks`` tasks' records and timelines (copied in bulk from one real
lifecycle the store itself wrote, varied in id, time, state, handler and
node). This process plays ``--nodes`` simulated nodes: it publishes one
real heartbeat per node per second (encoded, encrypted, batched) with loads
that vary, so the monitor holds a cluster of that size.

1. **Latency.** With the dashboard on, ``--clients`` concurrent closed-loop
   clients each make ``--requests`` requests, round-robin over the endpoints:
   the cluster (``/api/cluster``, ``/api/nodes`` pages, filtered and sorted,
   ``/api/tenants``, ``/api/alerts``, ``/api/throughput``, the cluster page)
   and the record (``/api/tasks`` filtered by state, by handler and node, by
   time, a deeper page by cursor, and ``/api/tasks/{id}`` of random tasks —
   the task page's one read); p50 and p99 per endpoint. The clients run in a
   process of their own, apart from the heartbeat publisher, once per client
   kind in ``--client`` (:mod:`benchmarks.http_load`: ``raw``, a persistent
   HTTP/1.1 connection on asyncio streams, about a tenth of httpx's CPU per
   request, then ``httpx``), against the same monitor; the monitor's CPU
   during each and the clients' own are reported. ``--py-spy FILE`` samples
   the monitor during the first kind's run. The per-client rate limit is
   lifted for this part (every client is 127.0.0.1).
2. **CPU.** The monitor's CPU time (user + system, from ``psutil``) over
   ``--seconds`` with the same heartbeat load, once without the dashboard and
   once with it and one cluster page open and live in Debian's Chromium
   (Playwright), or — without a browser — a client doing what the page does
   (the event stream, and on each event a node page and the history).

``--latency-only`` stops after part 1. Everything runs in a fresh namespace
that is deleted afterwards.

``--service-times`` measures instead what one request costs the server
alone: the dashboard's app in process (no socket, no broker) over a
``--nodes`` monitor state and the same ``--tasks`` record, each endpoint
requested ``--requests`` times one after the other; wall and CPU p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.http_load import CLIENT_KINDS, latency_in_a_process, percentile
from benchmarks.record_ingest import lifecycle
from benchmarks.soak import _sweep
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.messages import NodeHeartbeat, ResourceVector
from boson_shared.contract.topology import rk_heartbeat
from boson_shared.record.store import RecordStore
from boson_shared.runtime.heap import freeze_start_up_heap
from boson_shared.runtime.publisher import BatchingPublisher, Route
from tests.support.chromium import CHROMIUM, headless_chromium
from tests.support.cluster import ProcessCluster, free_port
from tests.support.database import create_database, drop_database

ENDPOINTS = (
    "/api/cluster",
    "/api/nodes?limit=50",
    "/api/nodes?limit=50&offset=500&sort=measured",
    "/api/nodes?status=down&limit=50",
    "/api/nodes?search=0042",
    "/api/tenants",
    "/api/alerts",
    "/api/throughput",
    "/",
    "/api/tasks?limit=50",
    "/api/tasks?state=failed&limit=50",
    "/api/tasks?handler=stats&node=sim-0042&limit=50",
    "/api/tasks?since={hour_ago}&limit=50",
    "/api/tasks?limit=50&cursor={cursor}",
    "/api/tasks/{task_id}",
    "/tasks",
)
"""Requested round-robin; ``{task_id}`` is a random recorded task each time."""

HANDLERS = ("noop", "stats", "forecast", "anomaly", "burn")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


async def fill_record(url: str, tasks: int, nodes: int) -> tuple[list[str], float]:
    """``tasks`` records and their timelines, newest in the last day; their ids, and how long.

    One real lifecycle goes through the store (so every column is as the
    monitor writes it); the rest are copies of its rows, copied in bulk.
    """
    began = time.perf_counter()
    store = RecordStore.open(url)
    await store.migrate()
    await store.ingest(lifecycle("template", 0.0))
    await store.close()
    connection = await asyncpg.connect(url, timeout=10)
    try:
        template = dict(await connection.fetchrow("SELECT * FROM boson_tasks"))
        timeline = [dict(row) for row in await connection.fetch("SELECT * FROM boson_task_events")]
        await connection.execute("DELETE FROM boson_task_events; DELETE FROM boson_tasks")
        pick = random.Random(11)
        now = time.time()
        task_rows, event_rows, ids = [], [], []
        for number in range(tasks):
            task_id = f"t{number:07d}"
            at = now - 86_400 * (1 - number / tasks)
            roll = pick.random()
            state = "failed" if roll < 0.05 else "started" if roll < 0.08 else "succeeded"
            node = f"sim-{pick.randrange(nodes):04d}"
            row = dict(template)
            shift = at - template["submitted_at"]
            for column in ("submitted_at", "placed_at", "assigned_at", "started_at"):
                row[column] = template[column] + shift
            row.update(
                task_id=task_id,
                state=state,
                handler=HANDLERS[number % len(HANDLERS)],
                node_id=node,
                finished_at=None if state == "started" else template["finished_at"] + shift,
                recorded_at=at,
                updated_at=at,
                expires_at=now + 86_400,
            )
            if state == "failed":
                row.update(error_type="ValueError", error_message="bad input", output=None)
            task_rows.append(tuple(row.values()))
            for event in timeline:
                if state == "started" and event["stage"] in ("succeeded", "failed"):
                    continue
                copied = dict(event)
                copied.update(
                    event_id=f"{task_id}.{event['stage']}",
                    task_id=task_id,
                    at=event["at"] + shift,
                    node_id=node if event["node_id"] is not None else None,
                    stage="failed"
                    if event["stage"] == "succeeded" and state == "failed"
                    else event["stage"],
                )
                event_rows.append(tuple(copied.values()))
            ids.append(task_id)
        await connection.copy_records_to_table(
            "boson_tasks", records=task_rows, columns=list(template)
        )
        await connection.copy_records_to_table(
            "boson_task_events", records=event_rows, columns=list(timeline[0])
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return ids, time.perf_counter() - began


class HeartbeatFeeder:
    """``nodes`` simulated nodes heartbeating once a second over the real bus."""

    def __init__(self, cluster: ProcessCluster, nodes: int) -> None:
        settings = cluster.settings()
        self.names = settings.names()
        self.transport = AmqpTransport(cluster.amqp_url, connection_name="boson-bench-nodes")
        self.codec = EnvelopeCodec.from_settings(settings)
        self.publisher = BatchingPublisher(
            self.transport, self.codec, max_items=200, max_bytes=1 << 20, max_in_flight=4
        )
        self.nodes = [f"sim-{number:04d}" for number in range(nodes)]
        self.started_at = time.time()
        self.seq = 0
        self.random = random.Random(7)

    def beat(self, node: str) -> NodeHeartbeat:
        load = self.random.random()
        slots = 8
        running = self.random.randint(0, slots)
        return NodeHeartbeat(
            node_id=node,
            seq=self.seq,
            started_at=self.started_at,
            capacity=ResourceVector(cpu=800, memory=1600, gpu=4 if node.endswith("7") else 0),
            allocated=ResourceVector(cpu=100 * running, memory=150 * running),
            slots=slots,
            running=running,
            free_slots=slots - running,
            measured_cpu=load,
            measured_memory=load * 0.6,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self.transport.connect()
        await self.transport.declare(self.names.base())
        try:
            while not stop.is_set():
                self.seq += 1
                began = time.monotonic()
                route = self.names.events_exchange
                await self.publisher.publish_many(
                    [(Route(route, rk_heartbeat(node)), self.beat(node)) for node in self.nodes]
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, 1.0 - (time.monotonic() - began)))
        finally:
            await self.publisher.close()
            await self.transport.close()


@contextlib.asynccontextmanager
async def heartbeating_cluster(
    amqp_url: str, namespace: str, log_dir: Path, database: str, nodes: int
) -> AsyncIterator[ProcessCluster]:
    """A process cluster in ``namespace`` (its record on ``database``) with ``nodes``
    simulated nodes heartbeating; the feeder stopped and the namespace swept after."""
    cluster = ProcessCluster(
        amqp_url,
        namespace,
        log_dir,
        extra_env={
            "BOSON_HEARTBEAT_INTERVAL_S": "1.0",
            "BOSON_MISSED_HEARTBEATS": "5",
            "BOSON_SNAPSHOT_INTERVAL_S": "1.0",
            "BOSON_LOG_LEVEL": "WARNING",
            "BOSON_DATABASE_URL": database,
        },
    )
    stop = asyncio.Event()
    feeding = asyncio.ensure_future(HeartbeatFeeder(cluster, nodes).run(stop))
    try:
        yield cluster
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await feeding
        cluster.stop_all()
        await _sweep(amqp_url, namespace)


@contextlib.asynccontextmanager
async def monitor_process(
    cluster: ProcessCluster, dashboard_port: int | None, nodes: int
) -> AsyncIterator[psutil.Process]:
    args = [] if dashboard_port is None else ["--dashboard-port", str(dashboard_port)]
    name = f"monitor-{'with' if dashboard_port is not None else 'without'}"
    started = cluster.start("monitor", *args, name=name)
    try:
        await cluster.wait_healthy(name)
        async with asyncio.timeout(60):
            while True:
                body = await asyncio.to_thread(started.health)
                alive = body.get("nodes_alive", 0) if body else 0
                if isinstance(alive, int) and alive >= nodes:
                    break
                await asyncio.sleep(0.5)
        yield psutil.Process(started.process.pid)
    finally:
        try:
            cluster.terminate(name, timeout=120)
        except subprocess.TimeoutExpired:
            cluster.kill(name)
            print(f"{name} did not drain within 120 s; killed", file=sys.stderr)


async def cpu_over(process: psutil.Process, seconds: float) -> float:
    """The process's CPU use over ``seconds``, as a share of one core."""
    before = process.cpu_times()
    began = time.monotonic()
    await asyncio.sleep(seconds)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return used / (time.monotonic() - began)


async def page_open_in_chromium(url: str, seconds: float) -> str:
    async with headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(url)
        await page.wait_for_selector("tr[data-node]", timeout=30_000)
        await asyncio.sleep(seconds)
        updated = await page.evaluate("document.body.dataset.updated || ''")
    return f"chromium (last live update at {updated})"


async def page_open_as_client(url: str, seconds: float) -> str:
    """What the cluster page does: listen, and on each event read a page and the history."""
    events = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async with http.stream("GET", "/api/events") as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data: "):
                            events += 1
                            await http.get("/api/nodes?limit=50")
                            await http.get("/api/throughput")
    return f"emulated page ({events} live updates)"


async def measure_cpu(
    cluster: ProcessCluster,
    nodes: int,
    seconds: float,
    dashboard: bool,
) -> dict[str, Any]:
    port = free_port() if dashboard else None
    async with monitor_process(cluster, port, nodes) as process:
        await asyncio.sleep(5)  # settle
        if port is None:
            return {"cpu_core_share": round(await cpu_over(process, seconds), 4)}
        url = f"http://127.0.0.1:{port}/"
        browser = await asyncio.to_thread(CHROMIUM.exists)
        viewer: Callable[[str, float], Awaitable[str]] = (
            page_open_in_chromium if browser else page_open_as_client
        )
        watching = asyncio.ensure_future(viewer(url, seconds + 10))
        await asyncio.sleep(8)  # the page is up and live
        share = await cpu_over(process, seconds)
        how = await watching
        return {"cpu_core_share": round(share, 4), "page": how}


async def latency_part(
    args: argparse.Namespace, base: str, monitor: psutil.Process, task_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The closed-loop clients of each kind in ``args.client``, one kind after the
    other against the same monitor; the monitor's CPU during each (and, with
    ``--py-spy``, py-spy's samples of it during the first)."""
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as apart:
        for number, kind in enumerate(args.client):
            measure = functools.partial(latency_in_a_process, base, ENDPOINTS, args.clients, kind)
            await loop.run_in_executor(apart, measure, 5, task_ids)  # warm up
            spy = None
            if args.py_spy is not None and number == 0:
                spy = await py_spy(monitor.pid, args.py_spy)
            load_before = os.getloadavg()
            before = monitor.cpu_times()
            timings, seconds, client_cpu_ms = await loop.run_in_executor(
                apart, measure, args.requests, task_ids
            )
            after = monitor.cpu_times()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                async with asyncio.timeout(60):
                    await spy.wait()
            busy = (after.user - before.user) + (after.system - before.system)
            requests = args.clients * args.requests
            results[kind] = {
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "latency": timings,
                "seconds": round(seconds, 2),
                "requests_per_s": round(requests / seconds, 1),
                "clients_cpu_ms_per_request": round(client_cpu_ms, 3),
                "monitor": {"cpu_s": round(busy, 3), "requests": requests},
            }
            print(kind, json.dumps(results[kind]), file=sys.stderr, flush=True)
    return results


async def py_spy(pid: int, output: str) -> asyncio.subprocess.Process:
    """py-spy sampling ``pid`` into ``output`` (raw collapsed stacks) until SIGINT."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--pid", str(pid)]
    command += ["--format", "raw", "--rate", "200", "--output", output]
    return await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"dash-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="boson-bench-dashboard-"))
    database = await create_database(args.postgres, "boson_bench_dashboard")
    try:
        return await run_with(args, namespace, log_dir, database)
    finally:
        await drop_database(args.postgres, database)


async def run_with(
    args: argparse.Namespace, namespace: str, log_dir: Path, database: str
) -> dict[str, Any]:
    task_ids, fill_s = await fill_record(database, args.tasks, args.nodes)
    print(f"record filled: {len(task_ids)} tasks in {fill_s:.1f} s", file=sys.stderr, flush=True)
    # This process plays a thousand independent nodes: a full pass of its
    # collector over what it built so far would silence them all at once and
    # send their heartbeats in one burst afterwards, which no fleet does. It
    # freezes that heap, as a service process does its own once started.
    freeze_start_up_heap()
    report: dict[str, Any] = {
        "nodes": args.nodes,
        "tasks_in_record": len(task_ids),
        "clients": args.clients,
    }
    async with heartbeating_cluster(
        args.amqp_url, namespace, log_dir, database, args.nodes
    ) as cluster:
        port = free_port()
        cluster.extra_env["BOSON_DASHBOARD_REQUESTS_PER_S"] = "1000000"
        async with monitor_process(cluster, port, args.nodes) as monitor:
            base = f"http://127.0.0.1:{port}"
            report["latency_by_client"] = await latency_part(args, base, monitor, task_ids)
        del cluster.extra_env["BOSON_DASHBOARD_REQUESTS_PER_S"]
        if args.latency_only:
            return report
        report["cpu_without_dashboard"] = await measure_cpu(
            cluster, args.nodes, args.seconds, dashboard=False
        )
        print(json.dumps(report["cpu_without_dashboard"]), file=sys.stderr, flush=True)
        report["cpu_with_dashboard_and_a_live_page"] = await measure_cpu(
            cluster, args.nodes, args.seconds, dashboard=True
        )
        added = (
            report["cpu_with_dashboard_and_a_live_page"]["cpu_core_share"]
            - report["cpu_without_dashboard"]["cpu_core_share"]
        )
        report["dashboard_adds_core_share"] = round(added, 4)
        idle_share = report["cpu_without_dashboard"]["cpu_core_share"]
        for part in report["latency_by_client"].values():
            during = part["monitor"]
            # The monitor's CPU beyond its heartbeat work, per request served: the service time.
            during["cpu_ms_per_request"] = round(
                1000 * (during["cpu_s"] - idle_share * part["seconds"]) / during["requests"], 3
            )
    return report


async def service_times(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.dashboard import asgi_client, dashboard_app
    from tests.support.monitor import monitor_state

    database = await create_database(args.postgres, "boson_bench_dashboard")
    try:
        task_ids, _ = await fill_record(database, args.tasks, args.nodes)
        handlers, _ = monitor_state(nodes=args.nodes)
        app, source = dashboard_app(
            handlers,
            store=RecordStore.open(database, pre_ping=False, reads_only=True),
            requests_per_s=1e9,
            max_age_s=3600.0,  # one state, as between two ticks
            share_s=args.share_s,
        )
        pick = random.Random(5)
        report: dict[str, Any] = {}
        async with asgi_client(app) as http:
            first = (await http.get("/api/tasks", params={"limit": 50})).json()
            for endpoint in ENDPOINTS:
                walls, cpus = [], []
                for _ in range(args.requests):
                    path = endpoint.format(
                        task_id=pick.choice(task_ids),
                        hour_ago=round(time.time() - 3600, 3),
                        cursor=first["next_cursor"],
                    )
                    wall, cpu = time.perf_counter(), time.process_time()
                    answer = await http.get(path)
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")
                report[endpoint] = {
                    "n": len(walls),
                    "wall_p50_ms": round(statistics.median(walls) * 1000, 2),
                    "wall_p99_ms": round(percentile(walls, 0.99) * 1000, 2),
                    "cpu_p50_ms": round(statistics.median(cpus) * 1000, 2),
                }
        assert source.tasks is not None
        await source.tasks.close()
        return {"nodes": args.nodes, "tasks_in_record": len(task_ids), "service": report}
    finally:
        await drop_database(args.postgres, database)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("BOSON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000, help="in the record")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--seconds", type=float, default=60.0, help="each CPU window")
    parser.add_argument(
        "--client",
        type=lambda text: tuple(text.split(",")),
        default=CLIENT_KINDS,
        help="the load generators, one after the other: raw, httpx or raw,httpx",
    )
    parser.add_argument("--latency-only", action="store_true", help="skip the CPU windows")
    parser.add_argument("--py-spy", help="sample the monitor during the first client's run")
    parser.add_argument("--service-times", action="store_true", help="in process, one by one")
    parser.add_argument(
        "--share-s",
        type=float,
        default=0.0,
        help="with --service-times: identical reads share answers this long (0: every read asks)",
    )
    args = parser.parse_args()
    report = asyncio.run(service_times(args) if args.service_times else run(args))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ENDPOINTS", "HeartbeatFeeder", "main", "run"]
