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
from boson.launcher import EmbeddedCluster, embedded
from boson_services.transfer.app import TransferService
from boson_services.transfer.settings import TransferSettings
from boson_shared.contract.messages import CheckData, DataChunk, DataRef, TaskSubmitted
from boson_shared.contract.topology import RK_DATA_CHUNK, RK_DATA_REQUEST, RK_SUBMIT
from boson_shared.handlers import TaskInput, handler
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.tap import Tap
from boson_shared.settings import BosonSettings
from boson_shared.transfer.chunks import (
    MIB,
    ChunkCoder,
    TransferOptions,
    chunk_count,
    fingerprint,
    sha256_hex,
    spans,
    upload_id_for,
)
from boson_shared.transfer.errors import BlobNotFoundError
from boson_shared.transfer.sender import ChunkSender

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


async def upload_tapped(rig: Rig, data: bytes, name: str) -> list[CheckData | DataChunk]:
    """Upload ``data``; the checks and chunks the client sent, in order."""
    tap = Tap(
        rig.client._transport,
        rig.client._codec,
        name,
        [
            (rig.client.names.work_exchange, RK_DATA_CHUNK),
            (rig.client.names.work_exchange, RK_DATA_REQUEST),
        ],
    )
    await tap.start()
    try:
        await rig.client.uploader.upload(data)
        await tap.wait_for(lambda m: isinstance(m, DataChunk) and m.digest is not None)
    finally:
        await tap.close()
    return [m for m in tap.messages if isinstance(m, CheckData | DataChunk)]


async def test_new_content_streams_before_it_is_hashed(rig: Rig) -> None:
    data = os.urandom(5 * CHUNK + 17)
    sent = await upload_tapped(rig, data, "unit-transfer-stream-tap")
    checks = [m for m in sent if isinstance(m, CheckData)]
    chunks = [m for m in sent if isinstance(m, DataChunk)]
    # One question, by fingerprint: nothing waited for the whole blob's hash.
    assert [(c.fingerprint, c.digest) for c in checks] == [(fingerprint(data), None)]
    assert sorted(c.index for c in chunks) == list(range(6))
    # Only the last chunk carries the digest, hashed while the others left.
    assert {c.index: c.digest for c in chunks if c.digest is not None} == {5: sha256_hex(data)}
    assert {c.upload_id for c in chunks} == {upload_id_for(fingerprint(data), CHUNK)}
    assert rig.client.uploader.stats.streamed == 1
    assert rig.service.store.blob_path(sha256_hex(data)).read_bytes() == data


def sharing_a_fingerprint(chunks_between: int) -> tuple[bytes, bytes]:
    """Two blobs of one size, head and tail that differ only in between."""
    head, tail = os.urandom(MIB), os.urandom(MIB)
    first = head + os.urandom(chunks_between * CHUNK) + tail
    second = head + os.urandom(chunks_between * CHUNK) + tail
    assert fingerprint(first) == fingerprint(second)
    return first, second


async def test_content_sharing_a_stored_fingerprint_is_asked_by_digest_and_sent(
    rig: Rig,
) -> None:
    first, second = sharing_a_fingerprint(3)
    await rig.client.uploader.upload(first)
    sent = await upload_tapped(rig, second, "unit-transfer-shared-fp-tap")
    checks = [m for m in sent if isinstance(m, CheckData)]
    chunks = [m for m in sent if isinstance(m, DataChunk)]
    assert [(c.fingerprint, c.digest) for c in checks] == [
        (fingerprint(second), None),
        (None, sha256_hex(second)),
    ]
    assert len(chunks) == len(spans(len(second), CHUNK))
    assert all(c.digest == sha256_hex(second) for c in chunks)
    assert rig.service.handlers.stats.fingerprint_hits == 1
    assert rig.service.store.blob_path(sha256_hex(first)).read_bytes() == first
    assert rig.service.store.blob_path(sha256_hex(second)).read_bytes() == second


async def test_a_staged_upload_of_other_content_never_makes_a_wrong_blob(rig: Rig) -> None:
    # Chunks 16..19 lie past the first MiB: they differ between the two blobs.
    first, second = sharing_a_fingerprint(8)
    partial = await rig.client.uploader.upload_report(first, stop_after=20)
    assert partial.chunks_sent == 20
    await wait_until(lambda: rig.service.handlers.stats.chunks == 20)
    report = await rig.client.uploader.upload_report(second)
    store = rig.service.store
    assert store.blob_path(report.ref.digest).read_bytes() == second
    # It resumed on the other content's chunks, the digest check caught it,
    # and the next round sent everything.
    assert rig.service.handlers.stats.digest_mismatches == 1
    assert report.chunks_sent == (len(spans(len(second), CHUNK)) - 20) + len(
        spans(len(second), CHUNK)
    )
    for blob in store.blobs.rglob("*"):
        if blob.is_file():
            assert sha256_hex(blob.read_bytes()) == blob.name


async def test_a_blob_stored_without_its_fingerprint_gets_it_when_sent_again(rig: Rig) -> None:
    # As a store written before fingerprints existed holds it.
    data = os.urandom(4 * CHUNK)
    store = rig.service.store
    store.blob_path(sha256_hex(data)).parent.mkdir(parents=True, exist_ok=True)
    store.blob_path(sha256_hex(data)).write_bytes(data)
    first = await rig.client.uploader.upload_report(data)
    assert first.chunks_sent == 4  # streamed: the store could not know
    await wait_until(lambda: store.staged() == 0)
    second = await rig.client.uploader.upload_report(data)
    assert second.chunks_sent == 0
    assert second.already_present


async def test_a_late_copy_of_a_streamed_chunk_is_a_duplicate(rig: Rig) -> None:
    data = os.urandom(3 * CHUNK)
    ref = await rig.client.uploader.upload(data)
    duplicates = rig.service.handlers.stats.duplicates
    late = DataChunk(
        upload_id=upload_id_for(fingerprint(data), CHUNK),
        index=0,
        total_chunks=3,
        total_size=len(data),
        offset=0,
        data=data[:CHUNK],
    )
    await rig.client._publisher.publish(Route(rig.client.names.work_exchange, RK_DATA_CHUNK), late)
    await wait_until(lambda: rig.service.handlers.stats.duplicates == duplicates + 1)
    assert rig.service.store.staged() == 0
    assert rig.service.store.has(ref.digest)


async def send_chunks(
    rig: Rig, content: bytes, *, upload_id: str, digest: str | asyncio.Future[str]
) -> None:
    """Send every chunk of ``content`` as it is, claiming ``digest`` (bypassing the uploader)."""
    sender = ChunkSender(rig.client._transport, rig.client._codec, ChunkCoder(), window=2)
    await sender.send(
        Route(rig.client.names.work_exchange, RK_DATA_CHUNK),
        spans(len(content), CHUNK),
        read=lambda span: content[span.offset : span.offset + span.size],
        total_size=len(content),
        upload_id=upload_id,
        digest=digest,
        total_chunks=chunk_count(len(content), CHUNK),
        reply_to=rig.client.client_id,
        mandatory=True,
    )


async def test_corrupt_chunks_never_make_a_blob_and_the_upload_is_sent_again(rig: Rig) -> None:
    data = os.urandom(3 * CHUNK)
    digest = sha256_hex(data)
    upload_id = f"{digest}-{CHUNK}"
    corrupt = bytearray(data)
    corrupt[CHUNK + 1] ^= 0x01
    await send_chunks(rig, bytes(corrupt), upload_id=upload_id, digest=digest)
    await wait_until(lambda: rig.service.handlers.stats.digest_mismatches == 1)
    assert not rig.service.store.has(digest)
    report = await rig.client.uploader.upload_report(data)
    assert report.chunks_sent == 3
    assert rig.service.store.blob_path(digest).read_bytes() == data


async def test_a_corrupt_stream_is_caught_by_the_digest_on_its_last_chunk(rig: Rig) -> None:
    data = os.urandom(4 * CHUNK)
    corrupt = bytearray(data)
    corrupt[2 * CHUNK + 5] ^= 0x01
    digest: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    digest.set_result(sha256_hex(data))
    # Streamed: no chunk but the last carries the digest, and that one last.
    upload_id = upload_id_for(fingerprint(data), CHUNK)
    await send_chunks(rig, bytes(corrupt), upload_id=upload_id, digest=digest)
    await wait_until(lambda: rig.service.handlers.stats.digest_mismatches == 1)
    store = rig.service.store
    assert not store.has(sha256_hex(data))
    assert not store.has(sha256_hex(bytes(corrupt)))
    assert store.staged() == 0
    report = await rig.client.uploader.upload_report(data)
    assert report.chunks_sent == 4
    assert store.blob_path(sha256_hex(data)).read_bytes() == data


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


async def test_concurrent_uploads_sharing_a_fingerprint_are_both_stored(rig: Rig) -> None:
    """Two blobs of one size and the same first and last MiB (say, a data set and its
    fix to one middle row) name the same upload: uploaded at once, their chunks
    mix in one staging. Neither may be stored wrong, and neither may keep
    throwing the other's staging away until its rounds run out."""
    edge = os.urandom(MIB)
    first = edge + os.urandom(2 * CHUNK) + edge
    second = edge + os.urandom(2 * CHUNK) + edge
    assert fingerprint(first) == fingerprint(second)
    async with asyncio.timeout(60):
        refs = await asyncio.gather(
            rig.client.uploader.upload(first), rig.client.uploader.upload(second)
        )
    store = rig.service.store
    assert [store.blob_path(ref.digest).read_bytes() for ref in refs] == [first, second]
