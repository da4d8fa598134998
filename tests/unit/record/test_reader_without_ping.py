"""A reader without pre-ping (the dashboard's): a dropped connection costs one read, not more."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, text

from boson_shared.errors import RecordUnavailableError
from boson_shared.record.store import RecordStore, TaskQuery
from tests.support.database import end_other_sessions
from tests.unit.record.events import lifecycle

pytestmark = pytest.mark.postgres


async def test_after_the_database_drops_its_connections_one_read_fails_then_reads_recover(
    postgres_url: str,
) -> None:
    writer = RecordStore.open(postgres_url)
    reader = RecordStore.open(postgres_url, pre_ping=False)
    try:
        await writer.migrate()
        await writer.ingest(lifecycle("task-1"))
        assert len((await reader.list(TaskQuery())).records) == 1  # a pooled connection now
        await end_other_sessions(postgres_url)
        with pytest.raises(RecordUnavailableError, match="reading"):
            await reader.list(TaskQuery())
        assert len((await reader.list(TaskQuery())).records) == 1
        assert (await reader.get("task-1")).task_id == "task-1"
    finally:
        await reader.close()
        await writer.close()


async def test_a_reads_only_store_reads_outside_any_transaction(postgres_url: str) -> None:
    """No BEGIN before a read, so no ROLLBACK after it: two round trips fewer per read."""
    writer = RecordStore.open(postgres_url)
    reader = RecordStore.open(postgres_url, pre_ping=False, reads_only=True)
    try:
        await writer.migrate()
        await writer.ingest(lifecycle("task-1"))
        for store, in_transaction in ((writer, True), (reader, False)):
            async with store.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                raw = await conn.get_raw_connection()
                assert raw.driver_connection is not None
                assert raw.driver_connection.is_in_transaction() is in_transaction
        assert [r.task_id for r in (await reader.list(TaskQuery())).records] == ["task-1"]
        assert (await reader.get("task-1")).state == "succeeded"
    finally:
        await reader.close()
        await writer.close()


async def test_a_bounded_reader_keeps_its_connections_through_bursts(postgres_url: str) -> None:
    """More reads at once than its connections: they wait for a kept one, none is opened anew."""
    writer = RecordStore.open(postgres_url)
    reader = RecordStore.open(postgres_url, pre_ping=False, reads_only=True, connections=3)
    opened: list[object] = []
    event.listen(reader.engine.sync_engine, "connect", lambda conn, _record: opened.append(conn))
    try:
        await writer.migrate()
        await writer.ingest(lifecycle("task-1"))
        for _ in range(4):
            pages = await asyncio.gather(*(reader.list(TaskQuery()) for _ in range(12)))
            assert all(len(page.records) == 1 for page in pages)
        assert len(opened) == 3
    finally:
        await reader.close()
        await writer.close()
