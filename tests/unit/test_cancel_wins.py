"""cancel_wins: a cancel that a library turned into an error is a cancel again."""

from __future__ import annotations

import asyncio

import pytest

from boson_shared.bus.cancel_wins import cancel_wins

pytestmark = pytest.mark.timeout(30)


async def _call_that_replaces_its_cancel() -> None:
    """As aiormq's channel calls do when the channel closes under a cancelled call:
    the call runs in a task of its own and its caller gets the channel's error."""
    call = asyncio.ensure_future(asyncio.sleep(60))
    try:
        await call
    except asyncio.CancelledError:
        raise ConnectionError("channel closed") from None


async def _cancel_soon(body: asyncio.Task[None]) -> BaseException | None:
    await asyncio.sleep(0.01)
    body.cancel()
    done, _ = await asyncio.wait({body}, timeout=5)
    assert done
    return None if body.cancelled() else body.exception()


async def test_without_it_the_caller_sees_the_error_and_not_the_cancel() -> None:
    task = asyncio.create_task(_call_that_replaces_its_cancel())
    assert isinstance(await _cancel_soon(task), ConnectionError)


async def test_the_cancel_comes_back_as_a_cancel() -> None:
    async def caller() -> None:
        with cancel_wins():
            await _call_that_replaces_its_cancel()

    task = asyncio.create_task(caller())
    assert await _cancel_soon(task) is None
    assert task.cancelled()


async def test_an_error_without_a_cancel_stays_the_error() -> None:
    async def caller() -> None:
        with cancel_wins():
            raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        await caller()


async def test_a_lost_cancel_of_its_own_timeout_leaves_the_error_as_it_was() -> None:
    async def caller() -> None:
        with cancel_wins():
            async with asyncio.timeout(0.01):
                await _call_that_replaces_its_cancel()

    with pytest.raises(ConnectionError):
        await caller()
