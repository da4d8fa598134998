"""Idempotent ingestion, property-tested: any order, any repeats, any batching.

Each task's lifecycle events are shuffled, repeated and cut into batches at
random; whatever the arrival, the record ends with one row per task, the
outcome its result reported (the first, when two disagree), exactly one
outcome in its timeline and each event once.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boson_shared.contract.messages import TERMINAL_STATES, TaskResult
from boson_shared.record.merge import RecordEvent, expand
from boson_shared.record.store import RecordStore
from tests.unit.record.events import lifecycle

_runs = itertools.count()


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[dict[str, str], list[list[RecordEvent]]]:
    """(task id → the outcome it must end with, batches in arrival order)."""
    run = next(_runs)
    tasks = draw(st.integers(min_value=1, max_value=4))
    expected: dict[str, str] = {}
    events: list[RecordEvent] = []
    for k in range(tasks):
        task_id = f"r{run}-t{k}"
        outcome = draw(st.sampled_from(["succeeded", "failed"]))
        expected[task_id] = outcome
        # Either as the services report it now, or as schema-1 schedulers did.
        separate = draw(st.booleans())
        # A short task's start comes with its result rather than on its own.
        start_with_result = draw(st.booleans())
        events += lifecycle(
            task_id,
            outcome=outcome,  # type: ignore[arg-type]
            submitted_at=1_000.0 + k,
            separate_submission=separate,
            start_with_result=start_with_result,
        )
    repeats = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    shuffled = draw(st.permutations(events + repeats))
    cuts = sorted(draw(st.sets(st.integers(0, len(shuffled)), max_size=6)))
    bounds = [0, *cuts, len(shuffled)]
    batches = [shuffled[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return expected, batches


async def _ingest_and_check(
    store: RecordStore, expected: dict[str, str], batches: list[list[RecordEvent]]
) -> None:
    total = 0
    for batch in batches:
        total += await store.ingest(batch)
    # A result carrying its task's start is two steps of the record.
    distinct = {e.message_id for batch in batches for item in batch for e in expand(item)}
    assert total == len(distinct)
    for task_id, outcome in expected.items():
        record = await store.get(task_id)
        assert record.state == outcome
        stages = [e.stage for e in record.timeline]
        assert sum(1 for s in stages if s in TERMINAL_STATES) == 1
        assert sorted(stages) == sorted(["submitted", "placed", "assigned", "started", outcome]), (
            stages
        )
        # Whatever arrived before the outcome, the steps fill in.
        assert record.handler == "echo"
        assert record.strategy == "binpack"
        assert (record.submitter, record.input_bytes, record.node_id) == ("c1", 3, "n1")
        assert record.demand is not None
        assert record.demand.memory == 2.0
        at = record.submitted_at
        times = (record.placed_at, record.assigned_at, record.started_at, record.finished_at)
        assert times == (at + 1, at + 2, at + 3, at + 4)
        assert record.dispatches == 1
        assert record.attempts == (1 if outcome == "succeeded" else 2)
        assert (record.error is None) == (outcome == "succeeded")
    # Everything again, in one batch: nothing changes.
    before = {t: await store.get(t) for t in expected}
    assert await store.ingest([e for batch in batches for e in batch]) == 0
    assert {t: await store.get(t) for t in expected} == before


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=arrivals())
def test_any_arrival_order_and_repeats_give_the_same_record(
    case: tuple[dict[str, str], list[list[RecordEvent]]], database_url: str
) -> None:
    # Each example's task ids are its own, so examples share the database.
    expected, batches = case

    async def run() -> None:
        store = RecordStore.open(database_url)
        try:
            await store.migrate()
            await _ingest_and_check(store, expected, batches)
        finally:
            await store.close()

    asyncio.run(run())


def test_the_first_of_two_different_outcomes_stays(tmp_path: Path) -> None:
    succeeded = lifecycle("t1")[-1]
    failed = lifecycle("t1", outcome="failed")[-1]
    assert isinstance(succeeded, TaskResult)
    second = failed.model_copy(update={"message_id": "t1.result.again"})

    async def run() -> str:
        store = RecordStore.open(f"sqlite:///{tmp_path}/records.sqlite3")
        try:
            await store.migrate()
            await store.ingest([succeeded, second])
            await store.ingest([second])
            return (await store.get("t1")).state
        finally:
            await store.close()

    assert asyncio.run(run()) == "succeeded"
