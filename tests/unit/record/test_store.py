"""The task record's store, on a SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event, text

from boson_shared.contract.messages import TaskResult
from boson_shared.errors import (
    ConfigError,
    InvalidQueryError,
    RecordUnavailableError,
    TaskNotFoundError,
)
from boson_shared.record.migrate import VERSION_TABLE, head_revision, revision
from boson_shared.record.store import RecordStore, TaskQuery
from tests.unit.record.events import SUCCEEDED_TIMELINE, lifecycle


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RecordStore]:
    store = RecordStore.open(database_url, inline_max_bytes=1024)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def test_migrations_reach_head_and_run_again_harmlessly(store: RecordStore) -> None:
    await store.migrate()
    assert await revision(store.engine) == head_revision()


async def test_a_schema_a_newer_boson_wrote_is_one_clear_config_error(
    store: RecordStore,
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="revision '9999', which this Boson does not know"):
        await store.migrate()


async def test_a_lifecycle_becomes_one_record_with_its_timeline(store: RecordStore) -> None:
    assert await store.ingest(lifecycle("t1")) == 4
    record = await store.get("t1")
    assert record.state == "succeeded"
    assert record.handler == "echo"
    assert record.submitter == "c1"
    assert record.input_bytes == 3
    assert record.node_id == "n1"
    assert record.strategy == "binpack"
    assert record.demand is not None
    assert record.demand.cpu == 1.0
    assert record.dispatches == 1
    assert record.output == {"task": "t1"}
    assert record.usage is not None
    assert record.usage.wall_s == 0.5
    assert (record.placed_at, record.assigned_at, record.started_at) == (1001.0, 1002.0, 1003.0)
    assert tuple(e.stage for e in record.timeline) == SUCCEEDED_TIMELINE


async def test_a_schema_1_lifecycle_with_its_own_submission_gives_the_same_record(
    store: RecordStore,
) -> None:
    await store.ingest(lifecycle("new", output=1))
    assert await store.ingest(lifecycle("old", output=1, separate_submission=True)) == 5
    new, old = await store.get("new"), await store.get("old")
    assert old.model_copy(update={"task_id": "new", "timeline": ()}) == new.model_copy(
        update={"timeline": ()}
    )
    assert [e.stage for e in old.timeline] == [e.stage for e in new.timeline]
    assert old.timeline[0].source == "scheduler"
    assert new.timeline[0].source is None  # told by the placement, not an event of its own


async def test_a_batch_with_redelivered_events_changes_only_by_the_new_ones(
    store: RecordStore,
) -> None:
    placed, assigned, started, result = lifecycle("t1")
    assert await store.ingest([placed, assigned]) == 2
    assert await store.ingest([assigned, started, placed, result, started]) == 2
    once = await store.get("t1")
    assert once.state == "succeeded"
    assert [e.stage for e in once.timeline].count("assigned") == 1
    # Redelivered again, alone and all together: nothing moves.
    assert await store.ingest([placed]) == 0
    assert await store.ingest([result, started, assigned, placed]) == 0
    assert await store.get("t1") == once


async def test_a_batch_is_a_few_statements_whatever_its_size(store: RecordStore) -> None:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement.split()[0].upper())

    # Half the tasks already have a row (their placement came earlier), half are new.
    await store.ingest([e for k in range(0, 60, 2) for e in lifecycle(f"t{k}")[:1]])
    batch = [e for k in range(60) for e in lifecycle(f"t{k}", submitted_at=1e3 + k)]
    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await store.ingest(batch) == len(batch) - 30
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)
    writes = [s for s in statements if s in ("INSERT", "UPDATE", "SELECT")]
    # Events in, rows read, new rows in, changed rows out: one statement (or
    # one executemany) each, not one per event or task.
    assert len(writes) <= 4, statements
    assert await store.count("succeeded") == 60


async def test_a_failure_keeps_its_error(store: RecordStore) -> None:
    await store.ingest(lifecycle("t1", outcome="failed"))
    record = await store.get("t1")
    assert record.state == "failed"
    assert record.error is not None
    assert record.error.error_type == "ValueError"
    assert record.attempts == 2
    assert record.output is None


async def test_an_error_message_with_a_nul_byte_is_stored_without_it(store: RecordStore) -> None:
    *steps, failed = lifecycle("t1", outcome="failed")
    assert isinstance(failed, TaskResult)
    assert failed.error is not None
    error = failed.error.model_copy(update={"message": "bad\x00input"})
    await store.ingest([*steps, failed.model_copy(update={"error": error})])
    record = await store.get("t1")
    assert record.error is not None
    assert record.error.message == "badinput"


async def test_a_repeated_batch_changes_nothing(store: RecordStore) -> None:
    batch = lifecycle("t1")
    await store.ingest(batch)
    before = await store.get("t1")
    assert await store.ingest(batch) == 0
    assert await store.ingest(list(reversed(batch))) == 0
    assert await store.get("t1") == before


async def test_steps_reported_after_the_outcome_fill_in_but_never_reopen(
    store: RecordStore,
) -> None:
    *steps, result = lifecycle("t1")
    await store.ingest([result])
    assert (await store.get("t1")).state == "succeeded"
    await store.ingest(steps)
    record = await store.get("t1")
    assert record.state == "succeeded"
    assert record.handler == "echo"
    assert record.strategy == "binpack"
    assert len([e for e in record.timeline if e.stage in ("succeeded", "failed")]) == 1


async def test_a_second_outcome_for_the_same_task_changes_nothing(store: RecordStore) -> None:
    await store.ingest(lifecycle("t1"))
    *_, failed = lifecycle("t1", outcome="failed")
    assert isinstance(failed, TaskResult)
    other = failed.model_copy(update={"message_id": "t1.result.other"})
    await store.ingest([other])
    record = await store.get("t1")
    assert record.state == "succeeded"
    assert record.error is None


async def test_an_output_past_the_bound_is_marked_not_kept(store: RecordStore) -> None:
    await store.ingest(lifecycle("t1", output="x" * 5000))
    record = await store.get("t1")
    assert record.output is None
    assert record.output_omitted


async def test_unknown_id_is_a_typed_error(store: RecordStore) -> None:
    with pytest.raises(TaskNotFoundError):
        await store.get("nope")


async def test_filters_and_pages(store: RecordStore) -> None:
    for k in range(7):
        await store.ingest(
            lifecycle(
                f"t{k}",
                outcome="failed" if k % 3 == 0 else "succeeded",
                node_id=f"n{k % 2}",
                submitted_at=1_000.0 + k,
                handler="even" if k % 2 == 0 else "odd",
            )
        )
    failed = await store.list(TaskQuery(state="failed"))
    assert [r.task_id for r in failed.records] == ["t6", "t3", "t0"]
    assert [r.task_id for r in (await store.list(TaskQuery(handler="odd"))).records] == [
        "t5",
        "t3",
        "t1",
    ]
    assert len((await store.list(TaskQuery(node_id="n0"))).records) == 4
    assert [r.task_id for r in (await store.list(TaskQuery(since=1004.0))).records] == [
        "t6",
        "t5",
        "t4",
    ]
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list(TaskQuery(limit=3, cursor=cursor))
        seen += [r.task_id for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"t{k}" for k in reversed(range(7))]
    assert await store.count() == 7
    assert await store.count("failed") == 3


async def test_a_page_without_outputs_reads_neither_outputs_nor_logs(store: RecordStore) -> None:
    await store.ingest(lifecycle("t1"))
    full = (await store.list(TaskQuery())).records[0]
    assert full.output == {"task": "t1"}
    bare = (await store.list(TaskQuery(), outputs=False)).records[0]
    assert bare == full.model_copy(update={"output": None, "logs": None})


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 100_000},
        {"cursor": "garbage"},
        {"cursor": "1.5"},
        {"state": "exploded"},
        {"since": 10.0, "until": 5.0},
    ],
)
def test_malformed_filters_are_refused(query: dict[str, object]) -> None:
    with pytest.raises(InvalidQueryError):
        TaskQuery(**query)  # type: ignore[arg-type]


async def test_expired_records_go_and_the_rest_stay(database_url: str) -> None:
    clock = [10_000.0]
    store = RecordStore.open(database_url, ttl_s=100.0, clock=lambda: clock[0])
    await store.migrate()
    try:
        await store.ingest(lifecycle("old", submitted_at=1_000.0))
        await store.ingest(lifecycle("new", submitted_at=9_990.0))
        assert await store.expire() == 1
        with pytest.raises(TaskNotFoundError):
            await store.get("old")
        assert (await store.get("new")).state == "succeeded"
    finally:
        await store.close()


async def test_two_migrations_at_once_leave_one_schema(database_url: str) -> None:
    stores = [RecordStore.open(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(store.migrate() for store in stores))
        assert await revision(stores[0].engine) == head_revision()
        await stores[1].ingest(lifecycle("t1"))
        assert (await stores[2].get("t1")).state == "succeeded"
    finally:
        for store in stores:
            await store.close()


async def test_two_stores_ingesting_the_same_events_at_once_write_each_once(
    database_url: str,
) -> None:
    stores = [RecordStore.open(database_url) for _ in range(2)]
    try:
        await stores[0].migrate()
        batch = [event for k in range(40) for event in lifecycle(f"t{k}", submitted_at=1e3 + k)]
        counts = await asyncio.gather(
            stores[0].ingest(batch[::2] + batch[1::2]), stores[1].ingest(list(reversed(batch)))
        )
        assert sum(counts) == len(batch)
        assert await stores[0].count() == 40
        assert await stores[0].count("succeeded") == 40
        for k in range(40):
            record = await stores[1].get(f"t{k}")
            assert [e.stage for e in record.timeline].count("succeeded") == 1
    finally:
        for store in stores:
            await store.close()


@pytest.mark.postgres
async def test_two_stores_taking_the_same_events_in_opposite_orders_do_not_deadlock(
    postgres_url: str,
) -> None:
    """A store inserts a batch's events in event-id order, so two transactions
    taking the same new events wait on each other in one order, not in a cycle
    (PostgreSQL would abort one of them: a deadlock, a failed ingest)."""
    stores = [RecordStore.open(postgres_url) for _ in range(2)]
    try:
        await stores[0].migrate()
        async with stores[0].engine.begin() as conn:
            # Each row's insert waits a moment: the two statements interleave.
            await conn.execute(
                text(
                    "CREATE FUNCTION slow_row() RETURNS trigger AS $$ "
                    "BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER slow_row BEFORE INSERT ON boson_task_events "
                    "FOR EACH ROW EXECUTE FUNCTION slow_row()"
                )
            )
        batch = [lifecycle(task_id)[0] for task_id in ("a", "b", "c")]
        counts = await asyncio.wait_for(
            asyncio.gather(stores[0].ingest(batch), stores[1].ingest(batch[::-1])), 30
        )
        assert sorted(counts) == [0, 3]
        assert await stores[0].count() == 3
    finally:
        for store in stores:
            await store.close()


async def test_a_database_that_does_not_answer_is_a_transient_error() -> None:
    store = RecordStore.open("postgresql://nobody@127.0.0.1:9/none")
    try:
        with pytest.raises(RecordUnavailableError):
            await store.migrate()
        with pytest.raises(RecordUnavailableError):
            await store.ingest(lifecycle("t1"))
    finally:
        await store.close()
