"""A reads-only store's read (the dashboard's) waits for its statement's round trip, nothing else.

Every wait of a read puts it behind whatever else is ready on its event
loop, so on a busy loop each one costs far more than the database takes to
answer. These tests drive a read's coroutine themselves and count how often
it waits, against the real database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import pytest

from boson_shared.errors import RecordUnavailableError
from boson_shared.record.store import RecordStore, TaskQuery
from tests.support.database import end_other_sessions
from tests.unit.record.events import lifecycle

pytestmark = pytest.mark.postgres


class _Waits:
    """Awaits a coroutine as ``await`` would, counting the times it waits for something."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.count = 0

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self.coro.__await__()
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                waited_on = inner.send(sent) if thrown is None else inner.throw(thrown)
            except StopIteration as done:
                return done.value
            self.count += 1
            sent, thrown = None, None
            try:
                sent = yield waited_on
            except BaseException as error:  # handed on to the read, as ``await`` would
                thrown = error


async def _waits_and_tasks(read: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[int, int]:
    """How often ``read()`` waits, and how many tasks it starts on the loop."""
    loop = asyncio.get_running_loop()
    started: list[Awaitable[Any]] = []
    previous = loop.get_task_factory()

    def counting(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **options: Any
    ) -> asyncio.Task[Any]:
        started.append(coro)
        return asyncio.Task(coro, loop=loop, **options)

    loop.set_task_factory(counting)  # type: ignore[arg-type]
    try:
        waits = _Waits(read())
        await waits
    finally:
        loop.set_task_factory(previous)
    return waits.count, len(started)


async def test_a_pooled_read_waits_once_and_starts_no_task(postgres_url: str) -> None:
    """Its one statement's round trip: no BEGIN, no ROLLBACK, no prepare, and its
    connection goes back to the pool in place (no task of its own to wait for)."""
    writer = RecordStore.open(postgres_url)
    reader = RecordStore.open(postgres_url, pre_ping=False, reads_only=True, connections=1)
    try:
        await writer.migrate()
        await writer.ingest(lifecycle("task-1"))
        page = TaskQuery(since=0.0, limit=50)
        for _ in range(2):  # the connection opened, each statement prepared once
            await reader.get("task-1")
            await reader.list(page, outputs=False)
        assert await _waits_and_tasks(lambda: reader.get("task-1")) == (1, 0)
        assert await _waits_and_tasks(lambda: reader.list(page, outputs=False)) == (1, 0)
        # The count sees round trips: a store in transactions also waits for
        # its BEGIN and its ROLLBACK.
        waits, _tasks = await _waits_and_tasks(lambda: writer.get("task-1"))
        assert waits >= 3
    finally:
        await reader.close()
        await writer.close()


async def test_a_read_that_fails_midway_still_gives_its_connection_back(
    postgres_url: str,
) -> None:
    """Its one connection dropped by the database under it: that read fails, the
    connection goes back to the pool all the same, and the next read gets one."""
    writer = RecordStore.open(postgres_url)
    reader = RecordStore.open(postgres_url, pre_ping=False, reads_only=True, connections=1)
    try:
        await writer.migrate()
        await writer.ingest(lifecycle("task-1"))
        await reader.get("task-1")  # its one connection, pooled
        await end_other_sessions(postgres_url)
        with pytest.raises(RecordUnavailableError, match="reading"):
            await reader.get("task-1")
        async with asyncio.timeout(5):  # well within the pool's wait for a free connection
            assert (await reader.get("task-1")).task_id == "task-1"
    finally:
        await reader.close()
        await writer.close()
