"""Exit 0 once a PostgreSQL session opens at BOSON_TEST_DATABASE_URL and answers a query.

A listening port is not enough: the server accepts TCP while it is still
starting up (and refuses sessions until it has recovered).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import asyncpg


async def _try_once(url: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    url = os.environ["BOSON_TEST_DATABASE_URL"]
    deadline = time.monotonic() + args.timeout
    last = "never tried"
    while time.monotonic() < deadline:
        try:
            asyncio.run(_try_once(url))
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
            time.sleep(1)
            continue
        print("PostgreSQL session opened: the database answers")
        return 0
    print(f"no PostgreSQL session within {args.timeout:.0f}s ({last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
