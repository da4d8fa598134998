"""The record of a steered task: ``cancelled`` is terminal, progress latest-wins, logs kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from boson_shared.contract.messages import (
    TaskProgress,
    TaskResult,
    TaskSubmitted,
    cancelled_result,
)
from boson_shared.record.store import RecordStore, TaskQuery
from tests.unit.record.events import lifecycle


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RecordStore]:
    store = RecordStore.open(database_url, inline_max_bytes=1024)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


def cancelled(task_id: str, at: float) -> TaskResult:
    task = TaskSubmitted(task_id=task_id, handler="echo", reply_to="c1", submitted_at=1_000.0)
    result = cancelled_result(task, attempts=1, node_id="n1", logs="half\x00way\n")
    return result.model_copy(update={"finished_at": at})


def progress(task_id: str, fraction: float, at: float) -> TaskProgress:
    return TaskProgress(
        task_id=task_id, fraction=fraction, message=f"at {fraction}", reply_to="c1", at=at
    )


async def test_cancelled_is_a_terminal_state_the_first_outcome_keeps(store: RecordStore) -> None:
    steps = lifecycle("t1")[:-1]  # submitted .. started
    success = lifecycle("t1")[-1]
    await store.ingest([*steps, cancelled("t1", 1_004.0)])
    await store.ingest([success])  # a second outcome changes nothing
    record = await store.get("t1")
    assert record.state == "cancelled"
    assert record.error is None
    assert record.logs == "halfway\n"
    assert [e.stage for e in record.timeline][-1] == "cancelled"
    page = await store.list(TaskQuery(state="cancelled"))
    assert [r.task_id for r in page.records] == ["t1"]
    assert await store.count("cancelled") == 1


async def test_progress_keeps_the_latest_report_made_before_the_end(store: RecordStore) -> None:
    await store.ingest(lifecycle("t2")[:-1])
    assert await store.record_progress([progress("t2", 0.5, 1_003.2)]) == 1
    await store.record_progress([progress("t2", 0.2, 1_003.1)])  # older: ignored
    record = await store.get("t2")
    assert (record.progress, record.progress_message) == (0.5, "at 0.5")
    await store.ingest([lifecycle("t2")[-1]])
    finished_at = (await store.get("t2")).finished_at
    assert finished_at is not None
    # A report made before the end still lands (the record may take it late);
    # one stamped after the end does not.
    await store.record_progress([progress("t2", 0.9, finished_at - 0.01)])
    await store.record_progress([progress("t2", 1.0, finished_at + 60)])
    assert (await store.get("t2")).progress == 0.9
    # A report for a task the record has no row for yet changes nothing.
    await store.record_progress([progress("unknown", 0.1, 1.0)])
