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

:meth:`GroupCommit.close` waits for the writes already asked for, but only so
long: a database that stopped answering must not hold the service's stop.
Past the bound the writer is cancelled and every write still waiting fails
with :class:`~boson_shared.errors.RecordUnavailableError`, as a failed
transaction would: its caller hands its delivery back, and the events wait in
the queue for the next monitor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from boson_shared.errors import RecordUnavailableError

T = TypeVar("T")

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 3.0
"""How long :meth:`GroupCommit.close` waits for the write in progress. The
monitor closes after its drain, whose grace the write has already had: this
is the last few seconds its stop grace leaves (see docs/design.md)."""

_CANCEL_WAIT_S = 1.0
"""How long a cancelled writer has to end (a driver may clean up first)."""

_Waiting = tuple[Sequence[T], asyncio.Future[None]]


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
        self._pending: list[_Waiting[T]] = []
        self._pending_items = 0
        self._flushing: list[_Waiting[T]] = []
        """The group whose transaction runs now."""
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.flushes = 0
        self.items = 0

    async def write(self, items: Sequence[T]) -> None:
        """Return once ``items`` are committed; raise what the commit raised."""
        if not items:
            return
        if self._closed:
            raise RecordUnavailableError("task record closed: the monitor is stopping")
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
            group: list[_Waiting[T]] = []
            size = 0
            while self._pending and (
                not group or size + len(self._pending[0][0]) <= self.max_items
            ):
                entry = self._pending.pop(0)
                group.append(entry)
                size += len(entry[0])
            self._pending_items -= size
            batch = [item for items, _ in group for item in items]
            self._flushing = group
            try:
                await self._flush(batch)
            except Exception as error:
                _fail(group, error)
            else:
                self.flushes += 1
                self.items += len(batch)
                for _, future in group:
                    if not future.done():
                        future.set_result(None)
            finally:
                self._flushing = []

    async def close(self, *, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Wait up to ``timeout`` seconds for the writes already asked for, then
        give up on them (see the module docstring); later writes fail at once."""
        self._closed = True
        writer = self._writer
        if writer is None or writer.done():
            return
        done, _ = await asyncio.wait({writer}, timeout=timeout)
        if done:
            return
        waiting = [*self._flushing, *self._pending]
        logger.warning(
            "task record: a write did not end within %.1fs of the stop; abandoning it "
            "and the %d writes waiting on it (their deliveries go back to the queue)",
            timeout,
            len(waiting),
        )
        writer.cancel()
        done, _ = await asyncio.wait({writer}, timeout=_CANCEL_WAIT_S)
        if not done:
            logger.warning("task record: the abandoned write carried on after its cancel")
        _fail(
            waiting,
            RecordUnavailableError(
                f"task record write abandoned: the database did not answer within "
                f"{timeout:.1f}s of the stop"
            ),
        )
        self._pending.clear()
        self._pending_items = 0


def _fail(group: Sequence[_Waiting[T]], error: Exception) -> None:
    """Fail every write of ``group`` still waiting with ``error``.

    A waiter may be gone (a drain cancelled it and handed its delivery back):
    its error counts as read, or asyncio would log it as never retrieved.
    """
    for _, future in group:
        if not future.done():
            future.set_exception(error)
            future.exception()


__all__ = ["GroupCommit"]
