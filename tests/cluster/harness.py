"""What the cluster tests share: spreading services over nodes, recovery timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

import psutil

from boson.client import Client, TaskHandle, TaskRequest
from boson_shared.bus.factory import transport_from_url
from boson_shared.contract.channel_types import CLIENT_QUEUE_EXPIRES_MS
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.messages import TaskResult
from tests.reliability.harness import CountingClient, gather_results
from tests.support.cluster import ProcessCluster
from tests.support.rabbit_cluster import RabbitCluster, RabbitNode
from tests.support.waiting import health, wait_until


def placement(rabbit: RabbitCluster, processes: ProcessCluster) -> dict[str, str | None]:
    """Each service process → the node its connection is on (None: not connected)."""
    where: dict[str, str | None] = {}
    for name, proc in processes.processes.items():
        node = rabbit.node_of(proc.process.pid)
        where[name] = node.name if node is not None else None
    return where


async def spread_executors(
    rabbit: RabbitCluster, processes: ProcessCluster, on: RabbitNode, *args: str, tries: int = 8
) -> list[str]:
    """Processes connected to ``on``; extra executors start until at least one is.

    Each process starts at a random node, so usually one already is.
    """
    for attempt in range(tries):
        here = [name for name, node in placement(rabbit, processes).items() if node == on.name]
        if here:
            return here
        name = f"extra-{attempt}"
        processes.start("executor", "--node-id", name, *args, name=name)
        await processes.wait_healthy(name)
    raise AssertionError(f"no service connected to {on.name} after {tries} extra executors")


async def reconnect_times(
    rabbit: RabbitCluster,
    processes: ProcessCluster,
    since: float,
    names: Iterable[str],
    timeout: float,
) -> dict[str, float]:
    """Seconds from ``since`` until each named process is healthy on a live node."""
    pending = set(names)
    done: dict[str, float] = {}
    async with asyncio.timeout(timeout):
        while pending:
            live = {node.name for node in rabbit.live()}
            for name in sorted(pending):
                proc = processes.processes[name]
                if proc.process.poll() is not None:
                    raise AssertionError(f"{name} exited: {processes.log(name)[-2000:]}")
                node = await asyncio.to_thread(rabbit.node_of, proc.process.pid)
                if node is None or node.name not in live:
                    continue
                body = await health(processes, name)
                if body.get("status") == "ok" and body.get("broker_connected") is True:
                    done[name] = time.monotonic() - since
                    pending.discard(name)
            await asyncio.sleep(0.1)
    return done


async def gather_or_explain(
    rabbit: RabbitCluster,
    processes: ProcessCluster,
    client: CountingClient,
    handles: Sequence[TaskHandle],
    timeout: float,
) -> dict[str, TaskResult]:
    """:func:`gather_results`, with the namespace's queues and each service's
    health (what it holds, dispatched, handed back) in the error when it times
    out: where the missing results stopped."""
    try:
        return await gather_results(client, handles, timeout)
    except TimeoutError as error:
        queues = await asyncio.to_thread(rabbit.queues)
        mine = {
            name: {k: row.get(k) for k in ("type", "leader", "online", "messages")}
            for name, row in queues.items()
            if name.startswith(processes.namespace)
        }
        services = {name: await health(processes, name) for name in sorted(processes.processes)}
        raise TimeoutError(f"{error}; queues: {mine}; services: {services}") from None


def cpu_seconds(processes: ProcessCluster) -> dict[str, float]:
    """CPU time (user + system) each service process has used so far."""
    used: dict[str, float] = {}
    for name, proc in processes.processes.items():
        times = psutil.Process(proc.process.pid).cpu_times()
        used[name] = times.user + times.system
    return used


async def leave_results_waiting(
    processes: ProcessCluster, url: str, count: int, timeout: float = 120.0
) -> tuple[str, list[str]]:
    """A client on ``url`` submits ``count`` tasks and is gone before their results come.

    It declares its reply queue as ``Client.start`` does but never consumes
    it, so every result waits there (the queue's leader is on ``url``'s
    node, where it was declared). Returns its client id and task ids once
    the balancer has seen every result come back.
    """
    settings = processes.settings()
    names = settings.names()
    before = int((await health(processes, "balancer")).get("dispatched", 0))
    transport = transport_from_url(url, connection_name="boson-test-gone")
    await transport.connect()
    gone = Client(settings, transport, EnvelopeCodec.from_settings(settings))
    await transport.declare(names.submit() + names.client(gone.client_id, CLIENT_QUEUE_EXPIRES_MS))
    requests = [
        TaskRequest("burn", params={"seconds": 0.001}, task_id=f"{gone.client_id}-{i:04d}")
        for i in range(count)
    ]
    try:
        await gone.submit_many(requests)
    finally:
        await gone.close()  # results still out: the reply queue stays

    async def all_back() -> bool:
        # Results travel batched, so a queue's message count says little:
        # the balancer has seen every result come back.
        body = await health(processes, "balancer")
        return body.get("dispatched") == before + count and body.get("in_flight") == 0

    await wait_until(all_back, timeout=timeout, step=0.5)
    return gone.client_id, [request.task_id or "" for request in requests]


__all__ = [
    "cpu_seconds",
    "gather_or_explain",
    "leave_results_waiting",
    "placement",
    "reconnect_times",
    "spread_executors",
]
