"""Routes data-plane replies from a reply queue to whoever waits for them.

A client (or an executor) has one reply queue. The transfer service answers
there with :class:`DataStatus` and :class:`DataStored` (keyed by upload id)
and streams fetched :class:`DataChunk` s (keyed by the fetch's request id).
The queue's consumer hands each such message to :meth:`DataReplies.dispatch`;
an uploader or fetcher :meth:`~DataReplies.subscribe` s to its id first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeAlias

from boson_shared.contract.messages import DataChunk, DataStatus, DataStored, Message
from boson_shared.runtime.consumer_spec import Emit

logger = logging.getLogger(__name__)

DataReply: TypeAlias = DataChunk | DataStatus | DataStored
DATA_REPLY_TYPES: tuple[type[Message], ...] = (DataChunk, DataStatus, DataStored)
"""The kinds a reply queue hands to :meth:`DataReplies.dispatch`."""


class DataReplies:
    """Per-id inboxes for the data plane's replies."""

    def __init__(self) -> None:
        self._inboxes: dict[str, list[asyncio.Queue[DataReply]]] = {}

    @contextmanager
    def subscribe(self, key: str) -> Iterator[asyncio.Queue[DataReply]]:
        """An inbox for replies about ``key`` (an upload or request id) while open."""
        inbox: asyncio.Queue[DataReply] = asyncio.Queue()
        self._inboxes.setdefault(key, []).append(inbox)
        try:
            yield inbox
        finally:
            inboxes = self._inboxes.get(key, [])
            if inbox in inboxes:
                inboxes.remove(inbox)
            if not inboxes:
                self._inboxes.pop(key, None)

    def dispatch(self, reply: Message) -> None:
        """Hand ``reply`` to every inbox open for its id.

        A reply nobody waits for (late, or for an upload already done) is
        dropped with a debug line.
        """
        if not isinstance(reply, DataChunk | DataStatus | DataStored):
            raise TypeError(f"not a data-plane reply: {reply.kind}")
        inboxes = self._inboxes.get(reply.upload_id)
        if not inboxes:
            logger.debug("unclaimed %s for %s", reply.kind, reply.upload_id)
            return
        for inbox in inboxes:
            inbox.put_nowait(reply)

    async def handle(self, reply: Message) -> Sequence[Emit]:
        """A consumer handler: dispatch, publish nothing."""
        self.dispatch(reply)
        return ()


__all__ = ["DATA_REPLY_TYPES", "DataReplies", "DataReply"]
