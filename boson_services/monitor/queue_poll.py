"""Which queues the monitor's depth poll asks about at each poll.

The monitor reports the depth of the shared queues and of every live node's
queue. Asking about a queue that does not exist costs far more than the
answer: the broker answers a passive declare of a missing queue by closing
the channel, and the next question opens another. A node heartbeating
without a queue (its executor has not declared it yet, it consumes from
elsewhere, or its queue expired) would cost that at every poll, for every
such node. So a queue found missing is asked about again only after a wait
that doubles with each miss in a row, from one poll interval up to
:data:`MAX_WAIT_S`; found, it is asked about at every poll again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_WAIT_S = 60.0
"""The longest a queue found missing goes unasked about."""


@dataclass(slots=True)
class _Miss:
    misses: int
    due_at: float


class MissingQueues:
    """The queues found missing, and when each is due to be asked about again."""

    def __init__(self, interval_s: float, *, max_wait_s: float = MAX_WAIT_S) -> None:
        if interval_s <= 0 or max_wait_s <= 0:
            raise ValueError("interval_s and max_wait_s must be positive")
        self.interval_s = interval_s
        self.max_wait_s = max_wait_s
        self._missing: dict[str, _Miss] = {}

    def __len__(self) -> int:
        return len(self._missing)

    def __contains__(self, queue: object) -> bool:
        return queue in self._missing

    def due(self, queue: str, now: float) -> bool:
        """Whether to ask about ``queue`` at this poll."""
        miss = self._missing.get(queue)
        return miss is None or now >= miss.due_at

    def missed(self, queue: str, now: float) -> None:
        """``queue`` does not exist: wait longer before asking again."""
        miss = self._missing.get(queue)
        misses = 1 if miss is None else miss.misses + 1
        wait = min(self.interval_s * 2 ** (misses - 1), self.max_wait_s)
        self._missing[queue] = _Miss(misses, now + wait)

    def found(self, queue: str) -> None:
        """``queue`` exists: ask about it at every poll."""
        self._missing.pop(queue, None)

    def keep_only(self, queues: Iterable[str]) -> None:
        """Forget the queues no longer polled (a node that went down)."""
        polled = set(queues)
        for queue in [q for q in self._missing if q not in polled]:
            del self._missing[queue]


__all__ = ["MAX_WAIT_S", "MissingQueues"]
