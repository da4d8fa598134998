"""A bounded memory of handled message ids, for idempotent consumers.

Besides ids already handled it knows ids *being* handled: a copy of a message
redelivered while the original is still in its handler (the connection
dropped mid-way) must wait for the original's outcome — acking it as a
repeat at once would lose the message if the original then fails.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class SeenIds:
    """Remembers the last ``capacity`` ids; the oldest are forgotten first.

    Redeliveries arrive soon after the original, so a bounded window catches
    them while memory stays flat however long the service runs.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._pending: dict[str, asyncio.Future[bool]] = {}

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, message_id: str) -> None:
        self._ids[message_id] = None
        self._ids.move_to_end(message_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def discard(self, message_id: str) -> None:
        """Forget an id (its handling failed and will be retried)."""
        self._ids.pop(message_id, None)

    def begin(self, message_id: str) -> None:
        """Mark an id as being handled now."""
        self._pending[message_id] = asyncio.get_running_loop().create_future()

    def pending(self, message_id: str) -> asyncio.Future[bool] | None:
        """The outcome (handled or not) of an id being handled now, if it is."""
        return self._pending.get(message_id)

    def finish(self, message_id: str, *, handled: bool) -> None:
        """The handling of an id ended: remember it if it was handled."""
        if handled:
            self.add(message_id)
        else:
            self.discard(message_id)
        future = self._pending.pop(message_id, None)
        if future is not None and not future.done():
            future.set_result(handled)


__all__ = ["SeenIds"]
