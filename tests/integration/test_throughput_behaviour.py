"""What the pipeline's speed rests on, pinned as behaviour (not timings).

The real services — monitor, scheduler, balancer and two executors — run
in-process on RabbitMQ, each on its own connection; taps bound beside the
real queues count what crosses each of the four hops *at the broker*:

* under load every stage packs many tasks per envelope (the confirm round
  trip is the batching window), and the balancer widens a node's credit
  window once its results show the tasks are short;
* an idle pipeline sends each task alone at every hop (no waiting to fill
  a batch);
* with batching on, a burst loses nothing and runs and reports nothing twice.

The publisher's own batching rules are tested in ``test_batching.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from boson.client import Client, TaskRequest
from boson_services.balancer.app import BalancerService
from boson_services.balancer.settings import BalancerSettings
from boson_services.executor.app import ExecutorService
from boson_services.executor.settings import ExecutorSettings
from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_services.scheduler.app import SchedulerService
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    Message,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import RK_ALL_RESULTS, RK_PLACED, RK_SUBMIT, rk_node
from boson_shared.runtime.service import RunningService, Service, start_in_background, stop_all
from boson_shared.runtime.tap import Tap
from boson_shared.settings import BosonSettings
from tests.conftest import AmqpBroker, TransportFactory, TransportKind

pytestmark = pytest.mark.broker

NODES = ("tp-1", "tp-2")
SLOTS = 2
CREDIT_PER_SLOT = 2
BURST = 600
WAIT = 60.0


@pytest.fixture
def transport_kind(amqp_broker: AmqpBroker) -> TransportKind:
    """RabbitMQ only: batching is shaped by real publisher confirms."""
    return TransportKind("amqp", amqp_broker.url, amqp_broker.rabbitmqctl)


def task_id_of(message: Message) -> str | None:
    if isinstance(message, TaskSubmitted | TaskResult):
        return message.task_id
    if isinstance(message, TaskPlaced | TaskAssigned):
        return message.task.task_id
    return None


@dataclass
class Pipeline:
    factory: TransportFactory
    namespace: str
    codec: EnvelopeCodec = field(default_factory=lambda: EnvelopeCodec(Keyring.ephemeral()))
    running: list[RunningService] = field(default_factory=list)
    taps: dict[str, Tap] = field(default_factory=dict)
    executors: list[ExecutorService] = field(default_factory=list)
    balancer: BalancerService | None = None
    client: Client | None = None

    def base(self, instance: str) -> dict[str, Any]:
        return {"namespace": self.namespace, "instance_id": instance, "drain_grace_s": 1.0}

    async def start(self, service: Service) -> None:
        running = await start_in_background(service, timeout=WAIT)
        self.running.append(running)

    async def up(self) -> None:
        fast: dict[str, Any] = {"heartbeat_interval_s": 0.2}
        await self.start(
            MonitorService(
                MonitorSettings(**self.base("mon"), **fast, snapshot_interval_s=0.2),
                await self.factory(),
                self.codec,
            )
        )
        await self.start(
            SchedulerService(
                SchedulerSettings(**self.base("sched")), await self.factory(), self.codec
            )
        )
        self.balancer = BalancerService(
            BalancerSettings(**self.base("bal"), credit_per_slot=CREDIT_PER_SLOT),
            await self.factory(),
            self.codec,
        )
        await self.start(self.balancer)
        for node_id in NODES:
            executor = ExecutorService(
                ExecutorSettings(**self.base(node_id), **fast, node_id=node_id, slots=SLOTS),
                await self.factory(),
                self.codec,
            )
            await self.start(executor)
            self.executors.append(executor)
        admin = await self.factory()
        names = BosonSettings(namespace=self.namespace).names()
        hops = {
            "submit": (names.work_exchange, RK_SUBMIT),
            "placed": (names.work_exchange, RK_PLACED),
            "assigned": (names.work_exchange, rk_node("*")),
            "result": (names.events_exchange, RK_ALL_RESULTS),
        }
        for hop, binding in hops.items():
            tap = Tap(admin, self.codec, f"{self.namespace}.tap-{hop}", [binding])
            await tap.start()
            self.taps[hop] = tap
        self.client = Client(
            BosonSettings(**self.base("client")),
            await self.factory(),
            self.codec,
            client_id="tp-client",
        )
        await self.client.start()
        balancer = self.balancer

        def balancer_sees_all() -> bool:
            alive = [n for n in balancer.dispatcher.nodes.values() if n.alive]
            return len(alive) == len(NODES)

        async with asyncio.timeout(WAIT):
            while not balancer_sees_all():  # noqa: ASYNC110 - state owned by the balancer
                await asyncio.sleep(0.05)

    async def run(self, requests: Sequence[TaskRequest]) -> list[TaskResult]:
        assert self.client is not None
        handles = await self.client.submit_many(requests)
        async with asyncio.timeout(WAIT):
            return list(await asyncio.gather(*(h.result() for h in handles)))

    def envelopes(self, hop: str, task_ids: set[str]) -> list[list[Message]]:
        """The envelopes seen on ``hop`` that carry any of ``task_ids``."""
        decoded = (self.codec.decode(body) for body in self.taps[hop].envelopes)
        return [
            messages
            for messages in decoded
            if any(task_id_of(message) in task_ids for message in messages)
        ]

    async def until_seen(self, task_ids: set[str]) -> None:
        """Taps are copies: wait until every hop's tap has every task's message."""

        def complete() -> bool:
            for tap in self.taps.values():
                seen = {task_id_of(message) for message in tap.messages}
                if not task_ids <= seen:
                    return False
            return True

        async with asyncio.timeout(WAIT):
            while not complete():  # noqa: ASYNC110 - the taps fill in the background
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
        for tap in self.taps.values():
            with contextlib.suppress(Exception):
                await tap.close()
        await stop_all(self.running, timeout=15)


@pytest.fixture
async def pipeline(transport_factory: TransportFactory, namespace: str) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(transport_factory, namespace)
    try:
        await pipeline.up()
        yield pipeline
    finally:
        await pipeline.close()


def noop_tasks(count: int, tag: str) -> list[TaskRequest]:
    return [TaskRequest("noop", params={"echo": f"{tag}-{i}"}) for i in range(count)]


@pytest.mark.timeout(180)
async def test_a_burst_is_batched_at_every_hop_and_arrives_exactly_once(
    pipeline: Pipeline,
) -> None:
    results = await pipeline.run(noop_tasks(BURST, "burst"))
    ids = {result.task_id for result in results}
    await pipeline.until_seen(ids)

    # Every task's result once, with its own output: nothing lost, nothing mixed up.
    assert len(ids) == BURST
    assert sorted(str(r.output) for r in results) == sorted(f"burst-{i}" for i in range(BURST))
    assert all(result.status == "succeeded" for result in results)
    # Each task ran on one node once, and exactly one result crossed the broker.
    ran = sum(executor.handlers.results["succeeded"] for executor in pipeline.executors)
    assert ran == BURST
    on_wire = Counter(
        m.task_id for m in pipeline.taps["result"].messages if isinstance(m, TaskResult)
    )
    assert set(on_wire) >= ids
    assert max(on_wire[task_id] for task_id in ids) == 1
    assert pipeline.client is not None
    assert pipeline.client.duplicates_dropped == 0

    # Batched under load at every hop: many tasks per envelope, not one each.
    per_envelope = {}
    for hop in ("submit", "placed", "assigned", "result"):
        envelopes = pipeline.envelopes(hop, ids)
        items = sum(len(messages) for messages in envelopes)
        assert items == BURST, hop  # each hop carried each task exactly once
        per_envelope[hop] = items / len(envelopes)
    assert per_envelope["submit"] >= 10, per_envelope
    assert per_envelope["placed"] >= 10, per_envelope
    assert per_envelope["assigned"] >= 2, per_envelope
    assert per_envelope["result"] >= 2, per_envelope


@pytest.mark.timeout(180)
async def test_the_balancer_widens_credit_for_short_tasks(pipeline: Pipeline) -> None:
    balancer = pipeline.balancer
    assert balancer is not None
    floor = SLOTS * CREDIT_PER_SLOT
    assert all(node.window == floor for node in balancer.dispatcher.nodes.values())
    await pipeline.run(noop_tasks(200, "widen"))
    # No-op tasks report microseconds of run time: a node may hold many more
    # than slots × credit_per_slot, or it would idle between results.
    used = [n for n in balancer.dispatcher.nodes.values() if n.task_s is not None]
    assert used
    ceiling = SLOTS * balancer.balancer_settings.max_credit_per_slot
    assert all(floor < n.window <= ceiling for n in used), [n.window for n in used]


@pytest.mark.timeout(120)
async def test_an_idle_pipeline_sends_each_task_alone(pipeline: Pipeline) -> None:
    ids: set[str] = set()
    for i in range(5):
        (result,) = await pipeline.run(noop_tasks(1, f"idle{i}"))
        assert result.output == f"idle{i}-0"
        ids.add(result.task_id)
        await asyncio.sleep(0.1)
    await pipeline.until_seen(ids)
    for hop in ("submit", "placed", "assigned", "result"):
        envelopes = pipeline.envelopes(hop, ids)
        # One envelope per task per hop: nothing waits to fill a batch.
        assert len(envelopes) == len(ids), hop
        assert all(len(messages) == 1 for messages in envelopes), hop
