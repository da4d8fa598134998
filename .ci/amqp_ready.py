"""Exit 0 once an AMQP connection to BOSON_TEST_AMQP_URL really opens.

A listening port is not enough: RabbitMQ accepts TCP before its app is
running. This opens a real AMQP connection and a channel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import aio_pika


async def _try_once(url: str) -> None:
    connection = await asyncio.wait_for(aio_pika.connect(url), timeout=5)
    try:
        channel = await connection.channel()
        await channel.close()
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    url = os.environ["BOSON_TEST_AMQP_URL"]
    deadline = time.monotonic() + args.timeout
    last = "never tried"
    while time.monotonic() < deadline:
        try:
            asyncio.run(_try_once(url))
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
            time.sleep(1)
            continue
        print("AMQP connection opened: the broker answers")
        return 0
    print(f"no AMQP connection within {args.timeout:.0f}s ({last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
