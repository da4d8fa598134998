"""Reply queues of clients that are gone: found and deleted after a while.

A client's reply queue is a quorum queue without ``x-expires`` (an expiring
quorum queue is what preceded the single RabbitMQ 3.10 node of the test
suite wedging, docs/design.md#queue-types-on-a-cluster). A client deletes
its queue when it closes with nothing pending; one that crashes, or closes
with tasks still out, leaves it, and the results of those tasks arrive in
it. The monitor sees the results (its queue binds ``result.#``, or, with the
record on, the results its record stores first), so it learns each reply
queue that results go to. Every sweep it asks the broker
how many consumers each has; a queue that has had none, sweep after sweep,
for ``gone_after_s`` is deleted with what it holds. A live client consumes
its queue, so only a client gone (or disconnected) that long loses it.

Bounded: at most ``capacity`` client ids are watched (the least recently
seen are dropped first), and an id is forgotten once its queue is deleted.
A monitor that restarts forgets what it watched: a queue whose last result
came before the restart is not found by this sweep.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from boson_shared.bus.abc import Transport
from boson_shared.contract.topology import Names
from boson_shared.errors import BrokerUnavailableError

logger = logging.getLogger(__name__)

WATCHED_MAX = 10_000
"""Client ids watched at most (a few hundred bytes each)."""


class AbandonedReplyQueues:
    """Watches client reply queues seen in results; deletes those long unconsumed."""

    def __init__(
        self,
        transport: Transport,
        names: Names,
        gone_after_s: float,
        *,
        clock: Callable[[], float],
        capacity: int = WATCHED_MAX,
    ) -> None:
        self._transport = transport
        self._names = names
        self.gone_after_s = gone_after_s
        self._clock = clock
        self._capacity = capacity
        self._unconsumed_since: OrderedDict[str, float | None] = OrderedDict()
        """Client id → since when its queue has had no consumer (None: it had one)."""
        self.deleted_total = 0

    def seen(self, client_id: str) -> None:
        """A result went to ``client_id``'s queue: watch it (most recent last)."""
        if client_id in self._unconsumed_since:
            self._unconsumed_since.move_to_end(client_id)
            return
        self._unconsumed_since[client_id] = None
        while len(self._unconsumed_since) > self._capacity:
            self._unconsumed_since.popitem(last=False)

    @property
    def watched(self) -> int:
        return len(self._unconsumed_since)

    async def sweep(self) -> list[str]:
        """Look at every watched queue once; delete those unconsumed too long."""
        deleted: list[str] = []
        for client_id in list(self._unconsumed_since):
            queue = self._names.client_queue(client_id)
            try:
                consumers = await self._transport.queue_consumers(queue)
            except BrokerUnavailableError as error:
                logger.debug("reply queue sweep stopped: %s", error)
                break
            now = self._clock()
            if consumers > 0:
                self._unconsumed_since[client_id] = None
                continue
            since = self._unconsumed_since.get(client_id)
            if since is None:
                self._unconsumed_since[client_id] = now
                continue
            if now - since < self.gone_after_s:
                continue
            try:
                await self._transport.delete_queue(queue)
            except BrokerUnavailableError as error:
                logger.debug("could not delete %s: %s", queue, error)
                break
            del self._unconsumed_since[client_id]
            deleted.append(queue)
        if deleted:
            self.deleted_total += len(deleted)
            logger.info(
                "deleted %d reply queues (where they still existed) unconsumed for %.0f s: %s",
                len(deleted),
                self.gone_after_s,
                ", ".join(deleted[:10]),
            )
        return deleted


__all__ = ["WATCHED_MAX", "AbandonedReplyQueues"]
