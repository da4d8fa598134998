"""Schema migrations (Alembic), run at monitor start under a lock.

Several monitors may start at once against one database. On PostgreSQL the
upgrade runs in one transaction holding an advisory lock, so the second
monitor waits, then finds the schema at the head revision and does nothing
(PostgreSQL's DDL is transactional). On SQLite an exclusive lock on a file
beside the database does the same for processes on this machine, the only
ones that can share a SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from boson_shared.errors import ConfigError
from boson_shared.record.location import sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "boson_alembic_version"
ADVISORY_LOCK_KEY = 0x626F736F6E_7265  # "boson" "re": any fixed 63-bit number
"""The PostgreSQL advisory lock every Boson migration takes."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _upgrade(connection: Connection) -> None:
    found = current_revision(connection)
    if found is not None:
        try:
            ScriptDirectory.from_config(alembic_config()).get_revision(found)
        except CommandError as e:  # a revision none of our migrations made
            raise _newer_schema(found) from e
    command.upgrade(alembic_config(connection), "head")


def _newer_schema(found: str | None) -> ConfigError:
    return ConfigError(
        f"the task record's schema is at revision {found!r}, which this Boson does not know"
        f" (it knows up to {head_revision()!r}): a newer Boson wrote it; upgrade Boson,"
        " or point BOSON_DATABASE_URL at another database"
    )


async def upgrade(engine: AsyncEngine) -> None:
    """Bring ``engine``'s database to the head revision (see the module docstring)."""
    async with _migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        await conn.run_sync(_upgrade)


async def revision(engine: AsyncEngine) -> str | None:
    """The database's current schema revision (None before the first migration)."""
    async with engine.connect() as conn:
        return await conn.run_sync(current_revision)


@contextlib.asynccontextmanager
async def _migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    path = sqlite_path(engine.url)
    if path is None:
        yield
        return
    lock = await asyncio.to_thread(_open_lock_file, path.with_name(path.name + ".migrate-lock"))
    try:
        await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    finally:
        lock.close()


def _open_lock_file(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a+b")


__all__ = [
    "ADVISORY_LOCK_KEY",
    "MIGRATIONS",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "revision",
    "upgrade",
]
