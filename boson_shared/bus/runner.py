"""Runs a consumer's handler once per delivery, in tasks the consumer owns.

Both transports hand each delivery to :class:`HandlerRunner`, so handlers run
concurrently up to the prefetch and outlive a dropped connection the same
way: the handler keeps going, its late ack is a logged no-op, and the broker
redelivers the message.
"""

from __future__ import annotations

import asyncio
import logging

from boson_shared.bus.abc import Delivery, DeliveryHandler

log = logging.getLogger(__name__)


class HandlerRunner:
    """The tasks running one subscription's handler."""

    def __init__(self, queue: str, handler: DeliveryHandler) -> None:
        self._queue = queue
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def spawn(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(delivery), name=f"boson-consume:{self._queue}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    async def _run(self, delivery: Delivery) -> None:
        try:
            await self._handler(delivery)
        except Exception:
            # The runtime catches handler errors itself; reaching here is a
            # bug. Dead-letter rather than requeue, so one poison message
            # cannot spin the consumer.
            log.exception("handler for queue %r raised", self._queue)
            if not delivery.settled:
                await delivery.nack(requeue=False)

    async def cancel_all(self, grace: float = 5.0) -> None:
        """Cancel running handlers and wait (bounded) for them to finish."""
        # A handler may close its own transport: never cancel (and wait for)
        # the task doing the closing.
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait, not a timeout around gather: a gather that is
            # cancelled still waits for a handler that carries on after its cancel.
            await asyncio.wait(tasks, timeout=grace)


__all__ = ["HandlerRunner"]
