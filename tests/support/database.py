"""Databases for the task-record tests: a SQLite file, or a fresh PostgreSQL one.

PostgreSQL comes from ``BOSON_TEST_DATABASE_URL`` (an account that may
create databases, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``):
each test gets a database of its own, created for it and dropped after.
Without that variable the PostgreSQL tests skip — and
``BOSON_REQUIRE_DATABASE=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from sqlalchemy.engine import make_url

_DROP_TIMEOUT_S = 30.0


def _plain(url: str) -> str:
    """The URL asyncpg itself takes (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(admin_url: str, prefix: str) -> str:
    """A new empty database; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(_plain(admin_url), timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    """Drop a test database, ending whatever sessions are still in it."""
    name = make_url(url).database
    connection = await asyncpg.connect(_plain(admin_url), timeout=10)
    try:
        async with asyncio.timeout(_DROP_TIMEOUT_S):
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def end_other_sessions(url: str) -> None:
    """End every other session on ``url``'s database, as a database restart
    would: pooled connections find theirs gone on their next statement."""
    connection = await asyncpg.connect(_plain(url), timeout=10)
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()


__all__ = ["create_database", "drop_database", "end_other_sessions"]
