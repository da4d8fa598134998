"""Retention: records expire after their TTL, and so do the blobs only they referred to."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from boson.launcher import EmbeddedCluster, derive
from boson_services.balancer.app import BalancerService
from boson_services.balancer.settings import BalancerSettings
from boson_services.monitor.app import MonitorService
from boson_services.monitor.settings import MonitorSettings
from boson_services.scheduler.app import SchedulerService
from boson_services.scheduler.settings import SchedulerSettings
from boson_services.transfer.app import TransferService
from boson_services.transfer.settings import TransferSettings
from boson_services.transfer.store import BlobStore
from boson_shared.errors import TaskNotFoundError
from boson_shared.settings import BosonSettings
from tests.support.waiting import wait_until

TTL_S = 3.0
GRACE_S = 1.0
"""Long enough that a sweep between an upload and the record taking the
task's submission (its reference) spares the blob; short next to ``TTL_S``."""
SWEEP_S = 0.3


def test_the_store_deletes_only_old_unreferenced_blobs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    store.open()
    paths = {}
    for name in ("kept", "young", "old"):
        digest = name.encode().hex().ljust(64, "0")
        path = store.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        paths[name] = (digest, path)
    now = time.time()
    for name in ("kept", "old"):
        os.utime(paths[name][1], (now - 100, now - 100))
    removed = store.delete_unreferenced(frozenset({paths["kept"][0]}), older_than=now - 50)
    assert removed == 1
    assert not paths["old"][1].exists()
    assert paths["kept"][1].exists()
    assert paths["young"][1].exists()


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_an_expired_record_takes_its_input_blob_with_it(tmp_path: Path) -> None:
    base = BosonSettings(database_url=f"sqlite:///{tmp_path}/records.sqlite3")  # type: ignore[arg-type]
    cluster = EmbeddedCluster(base, blob_dir=tmp_path / "blobs")
    try:
        monitor = MonitorService(
            derive(
                MonitorSettings,
                base,
                result_ttl=TTL_S,
                retention_interval_s=SWEEP_S,
                record_check_interval_s=0.1,
            ),
            cluster.transport(),
            cluster._codec(),
        )
        await cluster.start(monitor)
        for service in (
            SchedulerService(
                derive(SchedulerSettings, base), cluster.transport(), cluster._codec()
            ),
            BalancerService(derive(BalancerSettings, base), cluster.transport(), cluster._codec()),
        ):
            await cluster.start(service)
        transfer = TransferService(
            derive(TransferSettings, base, blob_dir=tmp_path / "blobs", blob_grace_s=GRACE_S),
            cluster.transport(),
            cluster._codec(),
        )
        await cluster.start(transfer)
        await cluster.start_executor("n1", slots=2)
        client = await cluster.client()
        try:
            handle = await client.submit("noop", data=os.urandom(400 * 1024))
            assert handle.task.data_ref is not None
            await handle.result(timeout=30)
            blob = transfer.store.blob_path(handle.task.data_ref.digest)
            assert blob.exists()

            async def recorded() -> bool:
                try:
                    return (await client.get(handle.task_id)).state == "succeeded"
                except TaskNotFoundError:
                    return False

            await wait_until(recorded, timeout=10)
            record = await client.get(handle.task_id)
            assert record.input_ref == handle.task.data_ref.digest
            # Referenced while the record lives, though older than the grace period
            # (and swept since).
            await asyncio.sleep(GRACE_S + 2 * SWEEP_S)
            assert monitor.record is not None
            assert monitor.record.expired == 0
            assert blob.exists()

            await wait_until(lambda: not blob.exists(), timeout=TTL_S + 10)
            with pytest.raises(TaskNotFoundError):
                await client.get(handle.task_id)
            assert transfer.blobs_deleted == 1
        finally:
            await client.close()
    finally:
        await cluster.stop()
