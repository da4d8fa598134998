"""Exit 0 once a PostgreSQL session opens at BOSON_TEST_DATABASE_URL and answers a query.

A listening port is not enough: the server accepts TCP while it is still
starting up (and refuses sessions until it has recovered).
"""

from __future__ import annotations

import sys

import asyncpg
from readiness import wait_until_ready


async def _try_once(url: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()


if __name__ == "__main__":
    sys.exit(
        wait_until_ready(
            "BOSON_TEST_DATABASE_URL",
            _try_once,
            ready="PostgreSQL session opened: the database answers",
            not_ready="no PostgreSQL session",
        )
    )
