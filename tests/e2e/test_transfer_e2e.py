"""The data plane end to end on the real RabbitMQ.

Every service runs in this process on its own AMQP connection. A tap bound to
``#`` on both exchanges sees every envelope that crosses, so the size limits
are checked at the broker: no envelope larger than a chunk plus the envelope's
overhead, task and result messages under the inline threshold.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from boson.client import Client
from boson.launcher import derive
from boson_services.balancer.app import BalancerService
from boson_services.balancer.settings import BalancerSettings
from boson_services.executor.app import ExecutorService
from boson_services.executor.settings import ExecutorSettings
from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_services.scheduler.app import SchedulerService
from boson_services.scheduler.settings import SchedulerSettings
from boson_services.transfer.app import TransferService
from boson_services.transfer.settings import TransferSettings
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import generate_key_spec
from boson_shared.contract.messages import DataChunk, TaskResult, TaskSubmitted
from boson_shared.runtime.service import Service
from boson_shared.runtime.tap import Tap
from boson_shared.settings import BosonSettings
from boson_shared.transfer.chunks import MIB, chunk_count

pytestmark = [pytest.mark.broker, pytest.mark.slow]

INLINE = 256 * 1024
ENVELOPE_OVERHEAD = 4096
"""Envelope header, tag, msgpack framing and the chunk's other fields: well under this."""


class Cluster:
    """Real services on real connections, stopped and cleaned up afterwards."""

    def __init__(self, url: str, settings: BosonSettings) -> None:
        self.url = url
        self.settings = settings
        self.codec = EnvelopeCodec.from_settings(settings)
        self.transports: list[AmqpTransport] = []
        self.stops: list[asyncio.Event] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.queues: set[str] = set()

    def transport(self) -> AmqpTransport:
        transport = AmqpTransport(self.url, connection_name="boson-test-transfer", op_timeout=10)
        self.transports.append(transport)
        return transport

    async def start(self, service: Service) -> None:
        self.queues.update(queue.name for queue in service.topology().queues)
        stop = asyncio.Event()
        self.stops.append(stop)
        self.tasks.append(asyncio.get_running_loop().create_task(service.run(stop)))
        async with asyncio.timeout(30):
            await service.started.wait()

    async def client(self) -> Client:
        client = Client(self.settings, self.transport(), self.codec)
        await client.start()
        self.queues.add(client.names.client_queue(client.client_id))
        return client

    async def close(self) -> None:
        for stop in self.stops:
            stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for transport in self.transports:
            await transport.close()
        names = self.settings.names()
        cleaner = AmqpTransport(self.url, connection_name="boson-test-cleanup")
        await cleaner.connect()
        try:
            every = names.shared_queues()
            for queue in self.queues | {q.name for q in every.queues}:
                await cleaner.delete_queue(queue)
            for exchange in every.exchanges:
                await cleaner.delete_exchange(exchange.name)
        finally:
            await cleaner.close()


@pytest.fixture
async def cluster(
    amqp_url: str, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Cluster, TransferService]]:
    settings = BosonSettings(
        namespace=namespace,
        broker_url=SecretStr(amqp_url),
        keys=SecretStr(generate_key_spec("e2e")),
    )
    cluster = Cluster(amqp_url, settings)
    blob_dir = tmp_path_factory.mktemp("blobs")
    transfer = TransferService(
        derive(TransferSettings, settings, blob_dir=blob_dir), cluster.transport(), cluster.codec
    )
    try:
        await cluster.start(transfer)
        await cluster.start(
            MonitorService(derive(MonitorSettings, settings), cluster.transport(), cluster.codec)
        )
        await cluster.start(
            SchedulerService(
                derive(SchedulerSettings, settings), cluster.transport(), cluster.codec
            )
        )
        await cluster.start(
            BalancerService(derive(BalancerSettings, settings), cluster.transport(), cluster.codec)
        )
        await cluster.start(
            ExecutorService(
                derive(ExecutorSettings, settings, node_id="transfer-e2e", slots=1),
                cluster.transport(),
                cluster.codec,
            )
        )
        yield cluster, transfer
    finally:
        await cluster.close()


def csv_of(size: int) -> tuple[bytes, np.ndarray[Any, np.dtype[np.float64]]]:
    rng = np.random.default_rng(11)
    table = np.round(rng.normal(100.0, 15.0, size=(size // 55 + 1, 5)), 6)
    buffer = io.BytesIO()
    np.savetxt(buffer, table, delimiter=",", fmt="%.6f", header="a,b,c,d,e", comments="")
    return buffer.getvalue(), table


async def test_a_50_mib_csv_runs_through_transfer(
    cluster: tuple[Cluster, TransferService],
) -> None:
    real, transfer = cluster
    client = await real.client()
    names = client.names
    tap = Tap(
        client._transport,
        real.codec,
        f"{names.namespace}.tap",
        [(names.work_exchange, "#"), (names.events_exchange, "#")],
    )
    real.queues.add(tap.queue)
    await tap.start()
    data, table = await asyncio.to_thread(csv_of, 50 * MIB)
    try:
        first = await client.submit("stats", data=data, timeout_s=120)
        result = await first.result(timeout=120)
        assert result.status == "succeeded", result.error
        output = result.output
        assert output["rows"] == table.shape[0]
        for column, name in enumerate("abcde"):
            got = output["columns"][name]
            assert got["mean"] == pytest.approx(table[:, column].mean(), rel=1e-9)
            assert got["std"] == pytest.approx(table[:, column].std(ddof=1), rel=1e-9)
            assert got["min"] == table[:, column].min()
            assert got["max"] == table[:, column].max()
        chunks = client.uploader.sender.stats.chunks
        assert chunks == chunk_count(len(data), MIB)

        # The same file again: the store has it, no chunk is sent.
        second = await client.submit("stats", data=data, timeout_s=120)
        again = await second.result(timeout=120)
        assert again.status == "succeeded"
        assert client.uploader.sender.stats.chunks == chunks
        await tap.wait_for(
            lambda m: isinstance(m, TaskResult) and m.task_id == second.task_id, timeout=10
        )
        kinds = [real.codec.peek_kind(envelope) for envelope in tap.envelopes]
        uploaded = [
            m for m in tap.messages if isinstance(m, DataChunk) and m.reply_to == client.client_id
        ]
        assert len(uploaded) == chunks
        # The executor fetched the input once; the second run used its cache.
        fetched = [m for m in tap.messages if isinstance(m, DataChunk) and m.reply_to is None]
        assert len(fetched) == chunks
        assert max(len(envelope) for envelope in tap.envelopes) <= MIB + ENVELOPE_OVERHEAD
        for envelope, kind in zip(tap.envelopes, kinds, strict=True):
            if kind in {"task.submitted", "task.placed", "task.assigned", "task.result"}:
                assert len(envelope) < INLINE, kind
        submitted = [m for m in tap.messages if isinstance(m, TaskSubmitted)]
        assert submitted
        assert all(m.data is None and m.data_ref is not None for m in submitted)
        assert transfer.handlers.stats.stored == 1
    finally:
        await tap.close()
        await client.close()


async def test_an_upload_killed_halfway_resumes_with_only_the_rest(
    cluster: tuple[Cluster, TransferService],
) -> None:
    real, transfer = cluster
    data = os.urandom(16 * MIB)
    killed = await real.client()
    partial = await killed.uploader.upload_report(data, stop_after=7)
    assert partial.chunks_sent == 7
    # The uploader dies: its connection goes, its reply queue stays (it expires later).
    await killed._transport.close()
    async with asyncio.timeout(30):
        while transfer.handlers.stats.chunks < 7:  # noqa: ASYNC110 - another component's counter
            await asyncio.sleep(0.05)
    survivor = await real.client()
    try:
        resumed = await survivor.uploader.upload_report(data)
        assert resumed.chunks_sent == 16 - 7
        assert not resumed.already_present
        assert transfer.store.blob_path(resumed.ref.digest).read_bytes() == data
        assert await survivor.fetcher.fetch(resumed.ref) == data
    finally:
        await survivor.close()
