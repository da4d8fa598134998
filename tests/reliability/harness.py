"""What every reliability test shares: a counting client, taps, figures.

The client counts what it *shows* per task id (the user-visible count, which
must be exactly one) apart from the repeats it dropped (legitimate
at-least-once redeliveries). Taps count at the broker what really crossed it.
Each test records its figures as JSON (``figures_dir()``) and prints them, so
``docs/reliability.md`` quotes measurements, not hopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boson.client import Client, TaskHandle
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.messages import TaskAssigned, TaskResult
from boson_shared.contract.topology import rk_node, rk_result
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.tap import Tap
from tests.support.cluster import ProcessCluster
from tests.support.waiting import health, wait_for_nodes, wait_until

FIGURES_ENV = "BOSON_RELIABILITY_FIGURES"
"""Directory the figures go to (default ``$TMPDIR/boson-reliability``)."""


class CountingClient(Client):
    """A :class:`Client` that counts each result it shows, per task id."""

    shown: Counter[str]
    shown_at: dict[str, float]
    """Monotonic time each task's result was shown (``shown_wall``: wall clock)."""
    shown_wall: dict[str, float]
    shown_results: dict[str, TaskResult]

    async def start(self) -> None:
        self.shown = Counter()
        self.shown_at = {}
        self.shown_wall = {}
        self.shown_results = {}
        await super().start()

    async def _on_result(self, result: TaskResult) -> Sequence[Emit]:
        dropped_before = self.duplicates_dropped
        emits = await super()._on_result(result)
        if self.duplicates_dropped == dropped_before:
            self.shown[result.task_id] += 1
            self.shown_at.setdefault(result.task_id, time.monotonic())
            self.shown_wall.setdefault(result.task_id, time.time())
            self.shown_results[result.task_id] = result
        return emits


async def counting_client(cluster: ProcessCluster, url: str | None = None) -> CountingClient:
    """A counting client of the cluster's namespace and keys (``url``: another broker port)."""
    settings = cluster.settings() if url is None else cluster.settings(broker_url=url)
    client = await CountingClient.connect(settings=settings)
    assert isinstance(client, CountingClient)
    return client


async def start_pipeline(
    cluster: ProcessCluster,
    nodes: Sequence[str],
    *executor_args: str,
    balancers: int = 1,
) -> None:
    """Monitor, scheduler, ``balancers`` balancers and one executor per node, healthy."""
    cluster.start("monitor")
    cluster.start("scheduler")
    for number in range(1, balancers + 1):
        cluster.start("balancer", name="balancer" if balancers == 1 else f"balancer-{number}")
    for node in nodes:
        cluster.start("executor", "--node-id", node, *executor_args, name=node)
    await cluster.wait_healthy()


@contextlib.asynccontextmanager
async def running_pipeline(
    cluster: ProcessCluster,
    nodes: Sequence[str],
    *executor_args: str,
    balancers: int = 1,
) -> AsyncIterator[CountingClient]:
    """:func:`start_pipeline`, then a counting client that sees every node; closed after."""
    await start_pipeline(cluster, nodes, *executor_args, balancers=balancers)
    client = await counting_client(cluster)
    try:
        await wait_for_nodes(client, len(nodes))
        yield client
    finally:
        await client.close()


async def gather_results(
    client: CountingClient, handles: Iterable[TaskHandle], timeout: float
) -> dict[str, TaskResult]:
    """Every handle's result, or TimeoutError saying how many are missing."""
    handles = list(handles)
    try:
        async with asyncio.timeout(timeout):
            results = await asyncio.gather(*(h.result() for h in handles))
    except TimeoutError:
        missing = [h.task_id for h in handles if client.shown[h.task_id] == 0]
        raise TimeoutError(
            f"{len(missing)} of {len(handles)} results missing after {timeout}s: {missing[:10]}"
        ) from None
    return {h.task_id: r for h, r in zip(handles, results, strict=True)}


@dataclass
class Delivery:
    """The exactly-once ledger of one run, as the client saw it."""

    submitted: int
    completed: int
    lost: int
    duplicated: int
    duplicates_dropped: int

    def as_dict(self) -> dict[str, int]:
        return {
            "tasks": self.submitted,
            "completed": self.completed,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "duplicates_dropped_by_client": self.duplicates_dropped,
        }


def ledger(client: CountingClient, task_ids: Iterable[str]) -> Delivery:
    ids = list(task_ids)
    completed = sum(1 for task_id in ids if client.shown[task_id] >= 1)
    duplicated = sum(client.shown[task_id] - 1 for task_id in ids if client.shown[task_id] > 1)
    # A result the client showed for a task it never submitted is a duplicate too.
    strangers = sum(n for task_id, n in client.shown.items() if task_id not in set(ids))
    return Delivery(
        submitted=len(ids),
        completed=completed,
        lost=len(ids) - completed,
        duplicated=duplicated + strangers,
        duplicates_dropped=client.duplicates_dropped,
    )


def assert_exactly_once(client: CountingClient, task_ids: Iterable[str]) -> Delivery:
    record = ledger(client, task_ids)
    assert record.lost == 0, record
    assert record.duplicated == 0, record
    assert client.pending() == 0
    return record


@dataclass
class Watch:
    """Taps at the broker: assignments to some nodes and results to one client."""

    transport: AmqpTransport
    taps: dict[str, Tap] = field(default_factory=dict)

    @classmethod
    async def start(
        cls, cluster: ProcessCluster, client_id: str, nodes: Sequence[str] = ()
    ) -> Watch:
        transport = AmqpTransport(cluster.amqp_url, connection_name="boson-test-watch")
        await transport.connect()
        codec = EnvelopeCodec.from_settings(cluster.settings())
        names = cluster.settings().names()
        watch = cls(transport)
        taps = {
            "results": Tap(
                transport,
                codec,
                f"{cluster.namespace}.watch.results",
                [(names.events_exchange, rk_result(client_id))],
            )
        }
        for node in nodes:
            taps[node] = Tap(
                transport,
                codec,
                f"{cluster.namespace}.watch.{node}",
                [(names.work_exchange, rk_node(node))],
            )
        for tap in taps.values():
            await tap.start()
        watch.taps = taps
        return watch

    def assigned(self, node: str) -> set[str]:
        return {m.task.task_id for m in self.taps[node].messages if isinstance(m, TaskAssigned)}

    def results(self) -> list[TaskResult]:
        return [m for m in self.taps["results"].messages if isinstance(m, TaskResult)]

    async def close(self) -> None:
        try:
            for tap in self.taps.values():
                await tap.close()
        finally:
            await self.transport.close()


def figures_dir() -> Path:
    path = Path(os.environ.get(FIGURES_ENV) or Path(tempfile.gettempdir()) / "boson-reliability")
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(name: str, figures: dict[str, Any]) -> None:
    """Write a test's measured figures as JSON and print them (``pytest -s``)."""
    figures = {"test": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | {
        k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()
    }
    (figures_dir() / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nRELIABILITY {json.dumps(figures)}")


__all__ = [
    "CountingClient",
    "Delivery",
    "Watch",
    "assert_exactly_once",
    "counting_client",
    "figures_dir",
    "gather_results",
    "health",
    "ledger",
    "record",
    "running_pipeline",
    "start_pipeline",
    "wait_for_nodes",
    "wait_until",
]
