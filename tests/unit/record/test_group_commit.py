"""Group commit: concurrent writes share a flush; a failed flush fails its group only."""

from __future__ import annotations

import asyncio
import gc

import pytest

from boson_shared.errors import RecordUnavailableError
from boson_shared.record.group_commit import GroupCommit


async def test_writes_that_arrive_together_share_one_flush() -> None:
    flushed: list[list[int]] = []
    flushing = asyncio.Event()

    async def flush(items: list[int]) -> None:
        flushed.append(items)
        flushing.set()
        await asyncio.sleep(0.01)

    commits: GroupCommit[int] = GroupCommit(flush, max_items=100)
    await asyncio.gather(*(commits.write([k, k + 100]) for k in range(10)))
    assert len(flushed) == 1
    assert sorted(flushed[0]) == sorted([*range(10), *range(100, 110)])
    # Arrivals during a flush gather for the next one.
    flushing.clear()
    first = asyncio.ensure_future(commits.write([1]))
    await flushing.wait()
    rest = [asyncio.ensure_future(commits.write([n])) for n in range(5)]
    await asyncio.gather(first, *rest)
    assert len(flushed) == 3
    assert commits.items == 26


async def test_a_group_never_exceeds_max_items() -> None:
    sizes: list[int] = []

    async def flush(items: list[int]) -> None:
        sizes.append(len(items))

    commits: GroupCommit[int] = GroupCommit(flush, max_items=5)
    await asyncio.gather(*(commits.write([1, 2]) for _ in range(7)))
    assert max(sizes) <= 5
    assert sum(sizes) == 14


async def test_a_failed_flush_fails_its_waiters_and_the_next_group_goes_on() -> None:
    calls = 0

    async def flush(items: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RecordUnavailableError("database away")

    commits: GroupCommit[int] = GroupCommit(flush, max_items=100)
    outcomes = await asyncio.gather(commits.write([1]), commits.write([2]), return_exceptions=True)
    assert all(isinstance(o, RecordUnavailableError) for o in outcomes)
    await commits.write([3])
    assert calls == 2


def test_max_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_items"):
        GroupCommit(lambda items: asyncio.sleep(0), max_items=0)


async def test_with_a_linger_writes_of_the_next_moments_share_the_flush() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        flushed.append(items)

    commits: GroupCommit[int] = GroupCommit(flush, max_items=100, linger_s=0.3)

    async def later(delay: float, item: int) -> None:
        await asyncio.sleep(delay)
        await commits.write([item])

    async with asyncio.timeout(5):
        await asyncio.gather(*(later(0.02 * k, k) for k in range(5)))
    assert flushed == [[0, 1, 2, 3, 4]]


async def test_a_full_batch_does_not_wait_out_the_linger() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        flushed.append(items)

    commits: GroupCommit[int] = GroupCommit(flush, max_items=3, linger_s=60.0)
    async with asyncio.timeout(5):
        await commits.write([1, 2, 3])
    assert flushed == [[1, 2, 3]]


async def _never_answers(items: list[int]) -> None:
    """A flush to a database that stopped answering."""
    await asyncio.Event().wait()


async def test_close_gives_up_on_a_write_that_never_ends_and_fails_its_waiters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    commits: GroupCommit[int] = GroupCommit(_never_answers, max_items=1)
    flushing = asyncio.ensure_future(commits.write([1]))
    waiting = asyncio.ensure_future(commits.write([2]))  # the next group, behind it
    await asyncio.sleep(0.05)
    async with asyncio.timeout(5):
        await commits.close(timeout=0.2)
    assert "did not end within 0.2s of the stop" in caplog.text
    for write in (flushing, waiting):
        with pytest.raises(RecordUnavailableError, match="write abandoned"):
            await write
    # A write asked for once closed fails at once instead of starting a writer.
    with pytest.raises(RecordUnavailableError, match="closed"):
        await commits.write([3])


async def test_close_waits_for_a_write_that_ends_within_its_bound() -> None:
    async def slow(items: list[int]) -> None:
        await asyncio.sleep(0.1)

    commits: GroupCommit[int] = GroupCommit(slow, max_items=10)
    write = asyncio.ensure_future(commits.write([1]))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await commits.close(timeout=3)
        await write
    assert commits.items == 1


async def test_an_abandoned_write_whose_waiter_is_gone_is_not_logged_as_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A drain cancels a waiter (its delivery goes back to the queue); the
    abandoned write's error then has no reader, and is no error to log."""
    commits: GroupCommit[int] = GroupCommit(_never_answers, max_items=10)
    write = asyncio.ensure_future(commits.write([1]))
    await asyncio.sleep(0.05)
    write.cancel()
    async with asyncio.timeout(5):
        await commits.close(timeout=0.1)
    del commits, write
    gc.collect()
    assert "never retrieved" not in caplog.text
