"""A bounded memory of handled message ids, for idempotent consumers."""

from __future__ import annotations

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


__all__ = ["SeenIds"]
