"""A bounded memory of handled message ids, for idempotent consumers.

Besides ids already handled it knows ids *being* handled: a copy of a message
redelivered while the original is still in its handler (the connection
dropped mid-way) must wait for the original's outcome — acking it as a
repeat at once would lose the message if the original then fails.

The memory is allocated once, at its full size: an open-addressing table of
64-bit id hashes plus a ring of them in arrival order, in flat arrays. A
dict of strings would grow with every id until full, so a service's resident
memory would keep climbing for its first hundred thousand messages; this
costs a fixed 48 bytes an id of capacity, from the start. Two different ids
share a 64-bit hash with odds of about one in 10¹⁴ at 100,000 remembered
ids.
"""

from __future__ import annotations

import asyncio
from array import array

_EMPTY = 0
_TOMBSTONE = 1
_HASH_BITS = (1 << 64) - 1


def _key(message_id: str) -> int:
    key = hash(message_id) & _HASH_BITS
    return key + 2 if key <= _TOMBSTONE else key


class SeenIds:
    """Remembers the last ``capacity`` ids; the oldest are forgotten first.

    Redeliveries arrive soon after the original, so a bounded window catches
    them while memory stays flat however long the service runs.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        size = 1 << max(4, (2 * capacity - 1).bit_length())  # load ≤ ½ when full
        self._mask = size - 1
        self._keys = array("Q", bytes(8 * size))
        self._where = array("q", bytes(8 * size))
        """Ring position of the key in the same table slot (its newest arrival)."""
        # Twice the capacity: a re-added id leaves a stale entry behind, and
        # stale entries must not push live ones out early.
        self._ring_size = 2 * capacity
        self._ring = array("Q", bytes(8 * self._ring_size))
        self._head = 0
        self._tail = 0
        """Ring positions [tail, head) hold arrivals, oldest first; p is ring[p % size]."""
        self._count = 0
        self._tombstones = 0
        # An id being handled maps to the future a redelivered copy waits on,
        # made only when a copy asks (rarely): None until then.
        self._pending: dict[str, asyncio.Future[bool] | None] = {}

    def __contains__(self, message_id: object) -> bool:
        if not isinstance(message_id, str):
            return False
        key = hash(message_id) & _HASH_BITS
        if key <= _TOMBSTONE:
            key += 2
        # _find, inlined: this is on every delivery's path.
        keys, mask = self._keys, self._mask
        slot = key & mask
        while True:
            found = keys[slot]
            if found == key:
                return True
            if found == _EMPTY:
                return False
            slot = (slot + 1) & mask

    def __len__(self) -> int:
        return self._count

    def add(self, message_id: str) -> None:
        """Remember an id (again: it becomes the newest)."""
        key = _key(message_id)
        slot = self._find(key)
        if slot < 0:
            slot = self._insert(key)
            self._count += 1
        if self._head - self._tail == self._ring_size:
            self._compact()
            slot = self._find(key)
        self._ring[self._head % self._ring_size] = key
        self._where[slot] = self._head
        self._head += 1
        if self._count > self._capacity:
            self._evict_oldest()

    def discard(self, message_id: str) -> None:
        """Forget an id (its handling failed and will be retried)."""
        self._remove(self._find(_key(message_id)))

    # -- the ring ----------------------------------------------------------

    def _live_slot(self, position: int) -> int:
        """The table slot of the id arriving at ``position``, if that is its newest arrival."""
        slot = self._find(self._ring[position % self._ring_size])
        return slot if slot >= 0 and self._where[slot] == position else -1

    def _evict_oldest(self) -> None:
        while True:
            slot = self._live_slot(self._tail)
            self._tail += 1
            if slot >= 0:
                self._remove(slot)
                return

    def _compact(self) -> None:
        """Drop stale arrivals from the ring, keeping the live ones in order."""
        slots = [
            slot
            for position in range(self._tail, self._head)
            if (slot := self._live_slot(position)) >= 0
        ]
        self._tail = self._head - len(slots)
        for position, slot in enumerate(slots, start=self._tail):
            self._ring[position % self._ring_size] = self._keys[slot]
            self._where[slot] = position

    # -- the table ---------------------------------------------------------

    def _find(self, key: int) -> int:
        keys, mask = self._keys, self._mask
        slot = key & mask
        while True:
            found = keys[slot]
            if found == key:
                return slot
            if found == _EMPTY:
                return -1
            slot = (slot + 1) & mask

    def _insert(self, key: int) -> int:
        keys, mask = self._keys, self._mask
        slot = key & mask
        while keys[slot] > _TOMBSTONE:
            slot = (slot + 1) & mask
        if keys[slot] == _TOMBSTONE:
            self._tombstones -= 1
        keys[slot] = key
        return slot

    def _remove(self, slot: int) -> None:
        if slot < 0:
            return
        self._keys[slot] = _TOMBSTONE
        self._count -= 1
        self._tombstones += 1
        if self._tombstones > (self._mask + 1) // 4:
            self._rebuild()

    def _rebuild(self) -> None:
        """Re-lay the live keys without tombstones (same size: no net new memory)."""
        old_keys, old_where = self._keys, self._where
        size = self._mask + 1
        self._keys = array("Q", bytes(8 * size))
        self._where = array("q", bytes(8 * size))
        self._tombstones = 0
        for slot in range(size):
            key = old_keys[slot]
            if key > _TOMBSTONE:
                self._where[self._insert(key)] = old_where[slot]

    # -- ids being handled now ----------------------------------------------

    def begin(self, message_id: str) -> None:
        """Mark an id as being handled now."""
        self._pending[message_id] = None

    def pending(self, message_id: str) -> asyncio.Future[bool] | None:
        """The outcome (handled or not) of an id being handled now, if it is."""
        if message_id not in self._pending:
            return None
        future = self._pending[message_id]
        if future is None:
            future = self._pending[message_id] = asyncio.get_running_loop().create_future()
        return future

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
