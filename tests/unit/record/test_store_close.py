"""Closing the store is bounded: a database that stopped answering does not hold a stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from boson_shared.record.store import RecordStore
from tests.support.chaos_proxy import ChaosProxy, in_front_of_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


@pytest.fixture
async def proxied(postgres_url: str) -> AsyncIterator[tuple[ChaosProxy, str]]:
    """A proxy in front of this test's PostgreSQL database, and the URL through it."""
    proxy, through = await in_front_of_database(postgres_url)
    try:
        yield proxy, through
    finally:
        await proxy.close()


async def test_close_gives_up_on_a_database_that_stopped_answering(
    proxied: tuple[ChaosProxy, str], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, through = proxied
    store = RecordStore.open(through)
    await store.migrate()  # leaves an idle connection in the pool
    # PostgreSQL's goodbye waits for the server to end the connection: it never does.
    proxy.stall()
    began = time.monotonic()
    async with asyncio.timeout(10):
        await store.close(timeout=0.5)
    assert time.monotonic() - began < 5
    assert "did not close within 0.5s" in caplog.text


async def test_close_of_an_answering_database_says_nothing(
    proxied: tuple[ChaosProxy, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, through = proxied
    store = RecordStore.open(through)
    await store.migrate()
    async with asyncio.timeout(10):
        await store.close(timeout=5)
    assert "did not close" not in caplog.text
