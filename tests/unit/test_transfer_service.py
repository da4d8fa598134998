"""The transfer service and its clients on the in-memory broker.

Uploads (dedup, resume, corrupt data, bad chunks), fetches (found, missing,
cached) and the SDK's transparent large inputs and outputs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boson.client import Client
from boson.embedded import EmbeddedCluster, embedded
from services.transfer.app import TransferService
from services.transfer.settings import TransferSettings
from shared.contract.messages import DataChunk, DataRef, TaskSubmitted
from shared.contract.topology import RK_DATA_CHUNK, RK_SUBMIT
from shared.handlers import TaskInput, handler
from shared.runtime.publisher import Route
from shared.runtime.tap import Tap
from shared.settings import BosonSettings
from shared.transfer.chunks import MIB, ChunkCoder, TransferOptions, sha256_hex, spans
from shared.transfer.errors import BlobNotFoundError
from shared.transfer.sender import ChunkSender

CHUNK = 64 * 1024
OPTIONS = TransferOptions(
    inline_max_bytes=16 * 1024, chunk_size=CHUNK, check_timeout_s=5, stored_timeout_s=2
)


@handler("big_output", mode="inline")
def big_output(task: TaskInput) -> list[float]:
    """A result far above the inline threshold."""
    return [float(x) for x in range(int(task.params.get("n", 100_000)))]


@dataclass
class Rig:
    cluster: EmbeddedCluster
    service: TransferService
    client: Client


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    cluster = EmbeddedCluster(BosonSettings(namespace="unit-transfer"))
    settings = TransferSettings(namespace="unit-transfer", blob_dir=tmp_path / "blobs")
    service = TransferService(settings, cluster.transport(), cluster._codec())
    await cluster.start(service)
    client = await cluster.client(transfer=OPTIONS)
    try:
        yield Rig(cluster, service, client)
    finally:
        await client.close()
        await cluster.stop()


async def test_an_upload_is_stored_and_fetched_back(rig: Rig) -> None:
    data = os.urandom(5 * CHUNK + 17)
    ref = await rig.client.uploader.upload(data)
    assert ref == DataRef(digest=sha256_hex(data), size=len(data))
    assert rig.service.store.blob_path(ref.digest).read_bytes() == data
    assert await rig.client.fetcher.fetch(ref) == data
    # The second time comes from the bounded cache, without a request.
    fetches = rig.service.handlers.stats.fetches
    assert await rig.client.fetcher.fetch(ref) == data
    assert rig.service.handlers.stats.fetches == fetches
    assert rig.client.fetcher.stats.cache_hits == 1


async def test_the_same_content_is_sent_once(rig: Rig) -> None:
    data = b"1,2,3\n" * 50_000
    first = await rig.client.uploader.upload_report(data)
    second = await rig.client.uploader.upload_report(data)
    assert first.chunks_sent == len(spans(len(data), CHUNK))
    assert second.chunks_sent == 0
    assert second.already_present


async def test_an_interrupted_upload_resends_only_the_rest(rig: Rig) -> None:
    data = os.urandom(10 * CHUNK)
    partial = await rig.client.uploader.upload_report(data, stop_after=4)
    assert partial.chunks_sent == 4
    await wait_until(lambda: rig.service.handlers.stats.chunks == 4)
    resumed = await rig.client.uploader.upload_report(data)
    assert resumed.chunks_sent == 6
    assert rig.service.store.has(resumed.ref.digest)


async def test_corrupt_chunks_never_make_a_blob_and_the_upload_is_sent_again(rig: Rig) -> None:
    data = os.urandom(3 * CHUNK)
    digest = sha256_hex(data)
    upload_id = f"{digest}-{CHUNK}"
    corrupt = bytearray(data)
    corrupt[CHUNK + 1] ^= 0x01
    sender = ChunkSender(rig.client._transport, rig.client._codec, ChunkCoder(), window=2)
    await sender.send(
        Route(rig.client.names.work_exchange, RK_DATA_CHUNK),
        spans(len(data), CHUNK),
        read=lambda span: bytes(corrupt[span.offset : span.offset + span.size]),
        total_size=len(data),
        upload_id=upload_id,
        digest=digest,
        total_chunks=3,
        reply_to=rig.client.client_id,
        mandatory=True,
    )
    await wait_until(lambda: rig.service.handlers.stats.digest_mismatches == 1)
    assert not rig.service.store.has(digest)
    report = await rig.client.uploader.upload_report(data)
    assert report.chunks_sent == 3
    assert rig.service.store.blob_path(digest).read_bytes() == data


async def test_a_chunk_off_the_layout_is_dead_lettered(rig: Rig) -> None:
    digest = sha256_hex(b"x" * 3000)
    chunk = DataChunk(
        upload_id=f"{digest}-1024",
        digest=digest,
        index=1,
        total_chunks=3,
        total_size=3000,
        offset=999,
        data=b"x" * 1024,
    )
    await rig.client._publisher.publish(Route(rig.client.names.work_exchange, RK_DATA_CHUNK), chunk)
    loop = rig.service.loops[0]
    await wait_until(lambda: loop.stats.dead_lettered == 1)
    assert loop.stats.dead_letter_reasons == {"permanent-error": 1}


async def test_fetching_what_is_not_stored_is_a_typed_error(rig: Rig) -> None:
    with pytest.raises(BlobNotFoundError):
        await rig.client.fetcher.fetch(DataRef(digest="0" * 64, size=10))


async def test_large_inputs_and_outputs_travel_by_reference(tmp_path: Path) -> None:
    table = np.random.default_rng(7).normal(size=(20_000, 3))
    path = tmp_path / "table.csv"
    np.savetxt(path, table, delimiter=",", fmt="%.6f")
    data = path.read_bytes()
    async with embedded(executors=1, handler_modules=[__name__]) as client:
        cluster_codec = client._codec
        tap = Tap(
            client._transport,
            cluster_codec,
            "unit-transfer-tap",
            [(client.names.work_exchange, RK_SUBMIT)],
        )
        await tap.start()
        try:
            stats: Any = await client.execute("stats", data=data, timeout=60)
            assert stats["rows"] == 20_000
            assert stats["columns"]["c1"]["mean"] == pytest.approx(table[:, 1].mean(), abs=1e-6)
            big = await client.execute("big_output", params={"n": 100_000}, timeout=60)
            assert big == [float(x) for x in range(100_000)]
            task = await tap.wait_for(lambda m: isinstance(m, TaskSubmitted))
            assert isinstance(task, TaskSubmitted)
            assert task.data is None
            assert task.data_ref is not None
            assert max(len(envelope) for envelope in tap.envelopes) < 16 * 1024
        finally:
            await tap.close()
        assert client.uploader.stats.uploads == 1


async def wait_until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        # The counters live in another component's stats: polling is the simple probe.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def test_a_mib_is_a_mib() -> None:
    assert MIB == 1024 * 1024
