"""Group commit: writes asked for at about the same time share one transaction.

Each consumer delivery hands its events to :meth:`GroupCommit.write` and
waits; one writer task drains whatever has gathered into a single call of
the write function, then wakes every waiter with its outcome. While that
transaction runs, new arrivals gather for the next one, so the batch grows
with the load. With a *linger*, the writer also waits that long before each
transaction (unless a full batch is already waiting), so that the events of
the next few milliseconds — often the later steps of the same tasks — share
it: fewer transactions, and each task's row written fewer times. A waiter is acknowledged
only after the transaction that holds its events commits; if it fails, every
waiter of that group gets the error (and hands its delivery back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Batches concurrent :meth:`write` calls into one ``flush(items)`` each turn."""

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[object]],
        *,
        max_items: int,
        linger_s: float = 0.0,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        if linger_s < 0:
            raise ValueError("linger_s must not be negative")
        self._flush = flush
        self.max_items = max_items
        self.linger_s = linger_s
        self._pending: list[tuple[Sequence[T], asyncio.Future[None]]] = []
        self._pending_items = 0
        self._writer: asyncio.Task[None] | None = None
        self.flushes = 0
        self.items = 0

    async def write(self, items: Sequence[T]) -> None:
        """Return once ``items`` are committed; raise what the commit raised."""
        if not items:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        self._pending_items += len(items)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="record-group-commit")
        await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            # One turn of the loop lets deliveries that arrived together join;
            # a linger, those of the next few milliseconds.
            lingering = self.linger_s > 0 and self._pending_items < self.max_items
            await asyncio.sleep(self.linger_s if lingering else 0)
            group: list[tuple[Sequence[T], asyncio.Future[None]]] = []
            size = 0
            while self._pending and (
                not group or size + len(self._pending[0][0]) <= self.max_items
            ):
                entry = self._pending.pop(0)
                group.append(entry)
                size += len(entry[0])
            self._pending_items -= size
            batch = [item for items, _ in group for item in items]
            try:
                await self._flush(batch)
            except Exception as error:
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
            else:
                self.flushes += 1
                self.items += len(batch)
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

    async def close(self) -> None:
        """Wait for the writes already asked for."""
        if self._writer is not None:
            await asyncio.wait({self._writer})


__all__ = ["GroupCommit"]
