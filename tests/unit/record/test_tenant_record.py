"""The record keeps each task's tenant and priority, and lists a tenant's tasks."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Connection, text

from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskEvent
from boson_shared.record.merge import RecordEvent
from boson_shared.record.migrate import alembic_config, head_revision, revision
from boson_shared.record.store import RecordStore, TaskQuery
from tests.unit.record.events import lifecycle


def of_tenant(
    task_id: str, tenant: str | None, priority: int | None, **options: object
) -> list[RecordEvent]:
    """A lifecycle of a task of ``tenant``; None: as schedulers before tenants
    reported it (a version-2 placement, without tenant or priority)."""
    if tenant is not None and priority is not None:
        return lifecycle(task_id, tenant=tenant, priority=priority, **options)  # type: ignore[arg-type]
    placed, *rest = lifecycle(task_id, **options)  # type: ignore[arg-type]
    assert isinstance(placed, TaskEvent)
    return [placed.model_copy(update={"tenant": None, "priority": None}), *rest]


def test_the_placement_event_carries_them_and_a_version_2_event_still_reads() -> None:
    codec = EnvelopeCodec(Keyring.ephemeral())
    placed = of_tenant("t1", "research", -1000)[0]
    assert isinstance(placed, TaskEvent)
    assert (placed.tenant, placed.priority) == ("research", -1000)
    assert codec.decode(codec.encode([placed])) == [placed]
    older = placed.model_copy(update={"tenant": None, "priority": None})
    payload = older.model_dump(mode="python", exclude={"kind"}, exclude_none=True)
    assert TaskEvent.model_validate(payload) == older
    assert 2 in TaskEvent.also_reads


async def test_the_placement_brings_tenant_and_priority(store: RecordStore) -> None:
    await store.ingest(of_tenant("t1", "research", -20))
    record = await store.get("t1")
    assert (record.tenant, record.priority) == ("research", -20)
    page = await store.list(TaskQuery())
    assert [(r.tenant, r.priority) for r in page.records] == [("research", -20)]


@pytest.mark.parametrize("late", ["after-a-later-step", "after-the-outcome"])
async def test_a_placement_that_arrives_late_still_fills_them(
    store: RecordStore, late: str
) -> None:
    """Two monitors, or a redelivery, can bring the placement after the steps
    that follow it: the row those made has no tenant until the placement comes."""
    placed, assigned, started, result = of_tenant("t1", "batch", 7)
    first = [assigned] if late == "after-a-later-step" else [assigned, started, result]
    await store.ingest(first)
    assert (await store.get("t1")).tenant is None
    await store.ingest([placed, started, result])
    record = await store.get("t1")
    assert (record.tenant, record.priority, record.state) == ("batch", 7, "succeeded")


async def test_a_tenant_filter_lists_its_tasks_and_default_the_older_ones_too(
    store: RecordStore,
) -> None:
    await store.ingest(of_tenant("a1", "a", 0, submitted_at=1_000.0))
    await store.ingest(of_tenant("b1", "b", 100, submitted_at=1_001.0))
    await store.ingest(of_tenant("a2", "a", 0, submitted_at=1_002.0))
    await store.ingest(of_tenant("d1", "default", 0, submitted_at=1_003.0))
    # Recorded before tasks had a tenant: it ran as the default tenant.
    await store.ingest(of_tenant("old", None, None, submitted_at=1_004.0))

    async def ids(tenant: str, **more: object) -> list[str]:
        page = await store.list(TaskQuery(tenant=tenant, **more))  # type: ignore[arg-type]
        return [r.task_id for r in page.records]

    assert await ids("a") == ["a2", "a1"]
    assert await ids("b") == ["b1"]
    assert await ids("default") == ["old", "d1"]
    assert await ids("nobody") == []
    first = await store.list(TaskQuery(tenant="a", limit=1))
    assert [r.task_id for r in first.records] == ["a2"]
    assert await ids("a", cursor=first.next_cursor) == ["a1"]


async def test_the_migration_keeps_rows_recorded_before_it(database_url: str) -> None:
    store = RecordStore.open(database_url)
    try:

        def to_0002(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), "0002")

        async with store.engine.begin() as conn:
            await conn.run_sync(to_0002)
            await conn.execute(
                text(
                    "INSERT INTO boson_tasks (task_id, state, handler, attempts, dispatches, "
                    "output_omitted, submitted_at, recorded_at, updated_at, expires_at) "
                    "VALUES ('before', 'succeeded', 'echo', 1, 1, false, 1.0, 1.0, 1.0, 9e12)"
                )
            )
        await store.migrate()
        assert await revision(store.engine) == head_revision()
        record = await store.get("before")
        assert (record.handler, record.tenant, record.priority) == ("echo", None, None)
        await store.ingest(of_tenant("after", "a", 3))
        assert (await store.get("after")).priority == 3
    finally:
        await store.close()
