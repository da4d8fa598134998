"""Closing the store is bounded: a database that stopped answering does not hold a stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from boson_shared.record.store import RecordStore
from tests.support.chaos_proxy import ChaosProxy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[ChaosProxy]:
    """A proxy in front of this test's PostgreSQL database."""
    upstream = make_url(postgres_url)
    proxy = ChaosProxy(upstream.host or "127.0.0.1", upstream.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def _through(proxy: ChaosProxy, postgres_url: str) -> str:
    return make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)


async def test_close_gives_up_on_a_database_that_stopped_answering(
    proxy: ChaosProxy, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RecordStore.open(_through(proxy, postgres_url))
    await store.migrate()  # leaves an idle connection in the pool
    # PostgreSQL's goodbye waits for the server to end the connection: it never does.
    proxy.stall()
    began = time.monotonic()
    async with asyncio.timeout(10):
        await store.close(timeout=0.5)
    assert time.monotonic() - began < 5
    assert "did not close within 0.5s" in caplog.text


async def test_close_of_an_answering_database_says_nothing(
    proxy: ChaosProxy, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RecordStore.open(_through(proxy, postgres_url))
    await store.migrate()
    async with asyncio.timeout(10):
        await store.close(timeout=5)
    assert "did not close" not in caplog.text
