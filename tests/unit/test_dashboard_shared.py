"""Identical dashboard reads share one answer, never beyond the freshness bound."""

from __future__ import annotations

import asyncio

import pytest

from boson_services.monitor.dashboard.present import Out
from boson_services.monitor.dashboard.shared import SharedAnswers
from tests.support.fakes import Clock


class Count(Out):
    n: int


class Reads:
    """A read that counts how often it really ran."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self) -> Count:
        self.runs += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("the database went away")
        return Count(n=self.runs)


async def test_identical_reads_within_the_bound_share_one_answer() -> None:
    clock = Clock(0.0)
    shared, read = SharedAnswers(1.0, clock=clock), Reads()
    assert await shared.get("a", read) == b'{"n":1}'
    clock.now = 0.9
    assert await shared.get("a", read) == b'{"n":1}'
    assert await shared.get("b", read) == b'{"n":2}'  # another read asks for itself
    clock.now = 1.0  # at the bound: asked again
    assert await shared.get("a", read) == b'{"n":3}'
    assert read.runs == 3 == shared.made


async def test_reads_arriving_while_the_first_runs_wait_for_it() -> None:
    shared, read = SharedAnswers(1.0), Reads()
    read.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(shared.get("a", read)) for _ in range(10)]
    await asyncio.sleep(0)
    read.gate.set()
    assert set(await asyncio.gather(*waiting)) == {b'{"n":1}'}
    assert read.runs == 1


async def test_a_failed_read_is_not_shared_with_the_next() -> None:
    shared, read = SharedAnswers(1.0), Reads()
    read.fail = True
    with pytest.raises(RuntimeError, match="went away"):
        await shared.get("a", read)
    read.fail = False
    assert await shared.get("a", read) == b'{"n":2}'


async def test_a_waiting_client_that_leaves_does_not_cancel_the_shared_read() -> None:
    shared, read = SharedAnswers(1.0), Reads()
    read.gate = asyncio.Event()
    asking = asyncio.ensure_future(shared.get("a", read))
    leaving = asyncio.ensure_future(shared.get("a", read))
    await asyncio.sleep(0)
    leaving.cancel()
    read.gate.set()
    assert await asking == b'{"n":1}'
    assert leaving.cancelled()
    assert read.runs == 1


async def test_when_the_asking_client_leaves_the_others_are_answered_all_the_same() -> None:
    """The read runs in the request that asked first; if that one goes away,
    the reads waiting for it ask again instead of failing."""
    shared, read = SharedAnswers(1.0), Reads()
    read.gate = asyncio.Event()
    leaving = asyncio.ensure_future(shared.get("a", read))
    staying = [asyncio.ensure_future(shared.get("a", read)) for _ in range(3)]
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    read.gate.set()
    assert set(await asyncio.gather(*staying)) == {b'{"n":2}'}
    assert leaving.cancelled()
    assert read.runs == 2


async def test_the_asking_request_makes_the_answer_without_a_task_of_its_own() -> None:
    """No hop through a task: on a busy loop each one waits a whole turn."""
    shared, read = SharedAnswers(1.0), Reads()
    before = len(asyncio.all_tasks())
    assert await shared.get("a", read) == b'{"n":1}'
    read.gate = asyncio.Event()
    pending = asyncio.ensure_future(shared.get("b", read))
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before + 1  # the request itself, nothing more
    read.gate.set()
    assert await pending == b'{"n":2}'


async def test_zero_shares_nothing_and_forget_drops_an_answer() -> None:
    unshared, read = SharedAnswers(0.0), Reads()
    await unshared.get("a", read)
    await unshared.get("a", read)
    assert read.runs == 2
    shared = SharedAnswers(60.0)
    await shared.get("a", read)
    shared.forget("a")
    assert await shared.get("a", read) == b'{"n":4}'


async def test_distinct_reads_beyond_the_cap_push_out_the_oldest() -> None:
    shared, read = SharedAnswers(60.0, max_entries=2), Reads()
    for key in ("a", "b", "c"):
        await shared.get(key, read)
    await shared.get("c", read)
    await shared.get("a", read)  # pushed out: asked again
    assert read.runs == 4


async def test_answers_past_the_bound_are_let_go() -> None:
    clock = Clock(0.0)
    shared, read = SharedAnswers(1.0, clock=clock), Reads()
    for key in ("a", "b"):
        await shared.get(key, read)
    clock.now = 1.5
    await shared.get("c", read)
    assert len(shared) == 1
