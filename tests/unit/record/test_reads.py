"""The record's reads: a task and its timeline in one statement, rows made records in one batch."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from sqlalchemy import insert

from boson_shared.errors import TaskNotFoundError
from boson_shared.record.reads import LISTED_NAMES, RECORD_NAMES
from boson_shared.record.rows import (
    RECORD_COLUMNS,
    RowShape,
    record_fields,
    to_record,
    to_records,
)
from boson_shared.record.schema import events, tasks
from boson_shared.record.store import RecordStore, TaskQuery
from tests.unit.record.events import SUCCEEDED_TIMELINE, lifecycle


def full_row() -> dict[str, Any]:
    """A stored row with every column set."""
    return {
        "task_id": "t1",
        "state": "failed",
        "handler": "echo",
        "tenant": "team-a",
        "priority": 3,
        "submitter": "c1",
        "complexity": 2.5,
        "data_size": 10.0,
        "input_bytes": 3,
        "input_ref": "a" * 64,
        "requests": {"cpu": 1.0},
        "timeout_s": 30.0,
        "max_retries": 2,
        "node_id": "n1",
        "strategy": "binpack",
        "demand": {"cpu": 1.0, "memory": 2.0, "gpu": 0.5},
        "attempts": 2,
        "dispatches": 3,
        "error_type": "ValueError",
        "error_message": "bad",
        "error_retryable": True,
        "wall_s": 1.5,
        "cpu_s": 1.25,
        "peak_memory_bytes": 4096,
        "output": msgpack.packb({"x": [1, 2]}, use_bin_type=True),
        "output_ref": "b" * 64,
        "output_bytes": 99,
        "output_omitted": False,
        "submitted_at": 1000.0,
        "placed_at": 1001.0,
        "assigned_at": 1002.0,
        "started_at": 1003.0,
        "finished_at": 1004.0,
        "recorded_at": 1000.5,
        "updated_at": 1004.5,
        "expires_at": 9000.0,
        "progress": 0.5,
        "progress_message": "half",
        "progress_at": 1003.5,
        "logs": "printed",
    }


def test_the_columns_read_are_every_column_a_record_shows() -> None:
    row = full_row()
    assert set(row) == {c.name for c in tasks.columns}  # every column of the table
    selected = {c.name: row[c.name] for c in RECORD_COLUMNS}
    assert record_fields(selected) == record_fields(row)


def test_a_batch_of_rows_makes_the_records_one_row_at_a_time_makes() -> None:
    rows = [full_row(), {"task_id": "t2", "state": "submitted", "submitted_at": 5.0}]
    batch = to_records(rows)
    assert batch == [to_record(row) for row in rows]
    assert batch[0].error is not None
    assert batch[0].error.retryable
    assert batch[0].output == {"x": [1, 2]}
    assert batch[1].attempts == 0
    assert batch[1].demand is None


async def test_a_task_reads_with_its_timeline_in_order(store: RecordStore) -> None:
    await store.ingest(lifecycle("t1") + lifecycle("t2", node_id="n2"))
    record = await store.get("t1")
    assert tuple(e.stage for e in record.timeline) == SUCCEEDED_TIMELINE
    assert {e.node_id for e in record.timeline} <= {None, "n1"}  # none of t2's
    bare = await store.get("t1", timeline=False)
    assert bare.timeline == ()
    assert bare == record.model_copy(update={"timeline": ()})
    listed = (await store.list(TaskQuery())).records
    assert {r.task_id: r for r in listed}["t1"] == bare


async def test_events_without_their_tasks_row_are_no_task(store: RecordStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(events),
            [{"event_id": "e1", "task_id": "lost", "stage": "started", "at": 5.0}],
        )
    with pytest.raises(TaskNotFoundError):
        await store.get("lost")
    with pytest.raises(TaskNotFoundError):
        await store.get("lost", timeline=False)


@pytest.mark.parametrize(
    "names", [RECORD_NAMES, LISTED_NAMES, ("submitted_at", "task_id", "state")]
)
def test_a_row_read_by_position_makes_the_fields_of_the_row_as_a_dict(
    names: tuple[str, ...],
) -> None:
    """The columns a statement lacks read as NULL, whatever their order."""
    sparse = {"task_id": "t2", "state": "submitted", "submitted_at": 5.0}
    timeline = [{"stage": "submitted", "at": 5.0, "node_id": None, "source": "client"}]
    shape = RowShape(names)
    for row in (full_row(), sparse):
        values = tuple(row.get(name) for name in names)
        as_dict = {name: row.get(name) for name in names}
        assert shape.fields(values) == record_fields(as_dict)
        assert shape.fields(values, timeline) == record_fields(as_dict, timeline)
        assert shape.records([values]) == [to_record(as_dict)]
        assert values[shape.task_id] == row["task_id"]
        assert values[shape.submitted_at] == row["submitted_at"]


async def test_a_reads_only_store_reads_what_a_store_in_transactions_reads(
    database_url: str,
) -> None:
    """Its reads take another way through SQLAlchemy (one greenlet each), to the same records."""
    writer = RecordStore.open(database_url)
    reader = RecordStore.open(database_url, pre_ping=False, reads_only=True)
    try:
        await writer.migrate()
        await writer.ingest(
            lifecycle("t1", output={"x": [1, 2.5, -0.0, "\u00e9"]})
            + lifecycle("t2", outcome="failed", node_id="n2", submitted_at=1_001.0)
        )
        for task_id in ("t1", "t2"):
            assert await reader.get(task_id) == await writer.get(task_id)
            assert await reader.get(task_id, timeline=False) == await writer.get(
                task_id, timeline=False
            )
        for outputs in (True, False):
            query = TaskQuery(limit=1)
            first = await reader.list(query, outputs=outputs)
            assert first == await writer.list(query, outputs=outputs)
            assert first.next_cursor is not None
            query = TaskQuery(limit=1, cursor=first.next_cursor)
            assert await reader.list(query, outputs=outputs) == await writer.list(
                query, outputs=outputs
            )
        with pytest.raises(TaskNotFoundError):
            await reader.get("nobody")
        assert (await reader.get("t1")).demand is not None  # a JSON column, decoded
    finally:
        await reader.close()
        await writer.close()
