"""A reader without pre-ping (the dashboard's): a dropped connection costs one read, not more."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from boson_shared.errors import RecordUnavailableError
from boson_shared.record.store import RecordStore, TaskQuery
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
        admin = await asyncpg.connect(
            make_url(postgres_url).set(drivername="postgresql").render_as_string(False),
            timeout=10,
        )
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        with pytest.raises(RecordUnavailableError, match="reading"):
            await reader.list(TaskQuery())
        assert len((await reader.list(TaskQuery())).records) == 1
        assert (await reader.get("task-1")).task_id == "task-1"
    finally:
        await reader.close()
        await writer.close()
