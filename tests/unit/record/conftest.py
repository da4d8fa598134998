"""The record's unit tests: a migrated store over each database under test.

A test module that needs other options (a TTL, a clock, a size limit)
defines its own ``store`` fixture, which takes precedence over this one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from boson_shared.record.store import RecordStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RecordStore]:
    store = RecordStore.open(database_url)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()
