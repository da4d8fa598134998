"""Exit 0 once an AMQP connection to BOSON_TEST_AMQP_URL really opens.

A listening port is not enough: RabbitMQ accepts TCP before its app is
running. This opens a real AMQP connection and a channel.
"""

from __future__ import annotations

import asyncio
import sys

import aio_pika
from readiness import wait_until_ready


async def _try_once(url: str) -> None:
    connection = await asyncio.wait_for(aio_pika.connect(url), timeout=5)
    try:
        channel = await connection.channel()
        await channel.close()
    finally:
        await connection.close()


if __name__ == "__main__":
    sys.exit(
        wait_until_ready(
            "BOSON_TEST_AMQP_URL",
            _try_once,
            ready="AMQP connection opened: the broker answers",
            not_ready="no AMQP connection",
        )
    )
