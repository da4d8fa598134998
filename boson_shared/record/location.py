"""Where the task record lives by default, and how a database URL is read.

Users write plain URLs (``sqlite:///path``, ``postgresql://user@host/db``);
the record talks to them through SQLAlchemy's asyncio drivers, aiosqlite and
asyncpg, so the driver is filled in here.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from boson_shared.errors import ConfigError

APP_NAME = "boson"
DATABASE_FILE = "records.sqlite3"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def default_database_path() -> Path:
    """The per-user SQLite file: ``$XDG_DATA_HOME/boson/records.sqlite3`` on Linux."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / DATABASE_FILE


def default_database_url() -> str:
    return f"sqlite:///{default_database_path()}"


def async_url(url: str) -> URL:
    """``url`` with the asyncio driver of its database; :class:`ConfigError` if unusable."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"not a database URL: {e}") from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"the task record needs SQLite or PostgreSQL, not {backend!r}")
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    return parsed


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


__all__ = [
    "APP_NAME",
    "DATABASE_FILE",
    "async_url",
    "default_database_path",
    "default_database_url",
    "sqlite_path",
]
