"""kill -9 the transfer service mid-upload, restart it: the upload resumes and the blob is right.

The restarted service picks the upload up from its staging log and the
chunks still queued (the unacked ones come back); the uploader just waits for
``DataStored``. The blob in the store must hash to its address and equal the
data sent, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.reliability.harness import counting_client, health, record, wait_until
from tests.support.cluster import ProcessCluster

MIB = 1024 * 1024
SIZE = 64 * MIB
CHUNKS = SIZE // MIB


async def chunks_written(cluster: ProcessCluster) -> int:
    return int((await health(cluster, "transfer")).get("chunks", 0))


@pytest.mark.broker
@pytest.mark.timeout(150)
async def test_upload_resumes_after_transfer_is_killed(cluster: ProcessCluster) -> None:
    # Few chunks in hand at once, so the kill lands mid-upload.
    cluster.extra_env["BOSON_CHUNK_PREFETCH"] = "2"
    cluster.start("transfer")
    await cluster.wait_healthy("transfer")
    client = await counting_client(cluster)
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    try:
        started = time.monotonic()
        upload = asyncio.create_task(client.uploader.upload_report(data))

        async def partway() -> bool:
            return await chunks_written(cluster) >= CHUNKS // 4

        await wait_until(partway, timeout=60)
        before_kill = await chunks_written(cluster)
        assert before_kill < CHUNKS, "the upload finished before the kill"
        cluster.kill("transfer")
        killed_at = time.monotonic()
        await asyncio.sleep(0.5)
        cluster.start("transfer")
        await cluster.wait_healthy("transfer")
        restarted_at = time.monotonic()

        report = await asyncio.wait_for(upload, timeout=120)
        stored_after_restart_s = time.monotonic() - restarted_at
        after = await health(cluster, "transfer")
        assert report.ref.digest == digest
        assert report.ref.size == SIZE
        blob = Path(str(after["blob_dir"])) / "blobs" / digest[:2] / digest
        stored = blob.read_bytes()
        assert hashlib.sha256(stored).hexdigest() == digest
        assert stored == data
        # Resumed, not restarted from nothing: the new process wrote only the rest.
        written_after = int(after["chunks"])
        assert written_after <= CHUNKS - before_kill + 2 * 2, (before_kill, written_after)
        assert int(after["stored"]) == 1
        assert await client.fetcher.fetch(report.ref) == data
        record(
            "transfer_killed",
            {
                "blob_bytes": SIZE,
                "chunks": CHUNKS,
                "kills": 1,
                "chunks_written_before_kill": before_kill,
                "chunks_written_after_restart": written_after,
                "chunks_sent_by_uploader": report.chunks_sent,
                "upload_rounds": client.uploader.stats.rounds,
                "killed_after_s": killed_at - started,
                "stored_after_restart_s": stored_after_restart_s,
                "digest_matches": True,
                "lost": 0,
            },
        )
    finally:
        await client.close()
