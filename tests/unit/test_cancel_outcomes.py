"""The client's word on each cancelled id: a holder's answer, its own result, or the record's."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from boson.steering import CancelOutcome, Lookup, decide, valid_ids
from boson_shared.contract.messages import (
    MAX_CANCEL_IDS,
    CancelTask,
    CancelVerdict,
    TaskFailure,
    TaskProgress,
    TaskRecord,
    TaskResult,
)


def record(state: str) -> TaskRecord:
    return TaskRecord(task_id="t", state=state, submitted_at=1.0)  # type: ignore[arg-type]


def lookup_giving(found: TaskRecord | str | None) -> Lookup:
    async def lookup(task_id: str, timeout: float) -> TaskRecord | str | None:
        return found

    return lookup


async def outcome(
    found: TaskRecord | str | None,
    *,
    verdict: CancelVerdict | None = None,
    own: bool = False,
    arrived: CancelOutcome | None = None,
) -> CancelOutcome:
    answer: asyncio.Future[CancelVerdict] = asyncio.get_running_loop().create_future()
    if verdict is not None:
        answer.set_result(verdict)
    return await decide(
        "t", answer, lookup_giving(found), own=own, timeout=1.0, arrived=lambda: arrived
    )


async def test_a_holders_answer_decides() -> None:
    assert await outcome(None, verdict="cancelled") == "cancelled"
    assert await outcome(record("started"), verdict="finished") == "already-finished"


async def test_without_an_answer_the_record_decides() -> None:
    assert await outcome(record("succeeded")) == "already-finished"
    assert await outcome(record("failed")) == "already-finished"
    assert await outcome(record("cancelled")) == "cancelled"
    # Not finished and nobody holds it: queued between services, where it is dropped.
    assert await outcome(record("placed")) == "cancelled"


async def test_an_id_nobody_knows_is_unknown_unless_this_client_sent_it() -> None:
    assert await outcome(None) == "unknown"
    assert await outcome("unavailable") == "unknown"
    assert await outcome(None, own=True) == "cancelled"
    # The client's own result, arrived meanwhile, beats a record that lags.
    assert await outcome(None, arrived="already-finished") == "already-finished"


def test_malformed_ids_are_told_apart_and_repeats_dropped() -> None:
    good, bad = valid_ids(("a", "a", "bad id!", "x" * 200, "b.c-1"))
    assert good == ["a", "b.c-1"]
    assert bad == ["bad id!", "x" * 200]


def test_the_wire_refuses_bad_cancels_and_progress() -> None:
    with pytest.raises(ValidationError):
        CancelTask(task_ids=(), reply_to="c")
    with pytest.raises(ValidationError):
        CancelTask(task_ids=tuple(f"t{k}" for k in range(MAX_CANCEL_IDS + 1)), reply_to="c")
    with pytest.raises(ValidationError):
        TaskProgress(task_id="t", fraction=1.5, reply_to="c")
    with pytest.raises(ValidationError):
        TaskResult(
            task_id="t", handler="h", status="cancelled", reply_to="c", submitted_at=1.0,
            error=TaskFailure(error_type="X", message="a cancelled result carries no error"),
        )  # fmt: skip
    assert TaskResult.schema_version == 3
    assert {1, 2} <= TaskResult.also_reads
