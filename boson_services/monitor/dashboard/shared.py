"""Identical reads share one answer, for a bounded moment.

Ten pages open on the Tasks list ask the record the same question every
time they refresh; the cluster endpoints shape the same moment again for
every client. :class:`SharedAnswers` answers identical reads (same key)
that arrive within ``max_age_s`` of each other with the JSON of the first
one, and reads that arrive while the first is still being computed wait for
it instead of asking the database again. An answer is therefore never more
than ``max_age_s`` older than what it reads (the freshness bound), and a
failed read is never shared with later ones. Everything runs on the
dashboard's one event loop, so there is nothing to lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from fastapi.responses import Response
from pydantic import BaseModel

MAX_ENTRIES = 256
"""Answers kept at most (each one page of JSON, up to a few hundred KB): distinct
reads beyond it within the bound push out the oldest; older ones go anyway."""


class JsonAnswer(Response):
    """JSON already encoded: the ``response_model`` documents it; nothing checks it again."""

    media_type = "application/json"


def encoded(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


class _ReadAbandonedError(Exception):
    """The request making a shared read went away before the read was done."""


@dataclass
class _Entry:
    made_at: float
    answer: asyncio.Future[bytes]


class SharedAnswers:
    """JSON answers keyed by the read that produced them (see the module docstring)."""

    def __init__(
        self,
        max_age_s: float,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_s = max_age_s
        """The freshness bound; 0 shares nothing (every read asks)."""
        self.max_entries = max_entries
        self.clock = clock
        self.made = 0
        """Answers computed (the rest were shared)."""
        self._entries: dict[Hashable, _Entry] = {}

    def __len__(self) -> int:
        """Answers held now."""
        return len(self._entries)

    async def json(self, key: Hashable, make: Callable[[], Awaitable[BaseModel]]) -> JsonAnswer:
        """The answer to the read ``key``: shared if fresh enough, else ``make()``'s, encoded."""
        return JsonAnswer(await self.get(key, make))

    async def get(self, key: Hashable, make: Callable[[], Awaitable[BaseModel]]) -> bytes:
        while True:
            now = self.clock()
            entry = self._entries.get(key)
            if entry is None or now - entry.made_at >= self.max_age_s:
                return await self._make(key, make, now)
            try:
                # A client that goes away cancels its own wait, never the shared read.
                return await asyncio.shield(entry.answer)
            except _ReadAbandonedError:
                continue  # the read's own client went away before it was done: ask again

    def forget(self, key: Hashable) -> None:
        """Stop sharing the answer to ``key`` (what it read has just changed)."""
        self._entries.pop(key, None)

    async def _make(
        self, key: Hashable, make: Callable[[], Awaitable[BaseModel]], now: float
    ) -> bytes:
        """Run the read in the asking request itself (no task to start and wait
        on: on a busy loop every hop costs a turn), sharing what it makes."""
        self.made += 1
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        entry = _Entry(now, answer)
        if self.max_age_s > 0:
            self._entries.pop(key, None)  # re-inserted last: the dict stays oldest first
            self._drop_expired(now)
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]
        try:
            body = encoded(await make())
        except BaseException as error:
            if self._entries.get(key) is entry:
                del self._entries[key]  # a failed read is never shared with later ones
            # Reads waiting for this one get its failure, or ask again if only
            # its client went away.
            answer.set_exception(
                _ReadAbandonedError() if isinstance(error, asyncio.CancelledError) else error
            )
            answer.exception()  # retrieved: nobody may be waiting
            raise
        answer.set_result(body)
        return body

    def _drop_expired(self, now: float) -> None:
        """Answers past the bound will never be shared again: let them go."""
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if now - entries[oldest].made_at < self.max_age_s:
                return
            del entries[oldest]


__all__ = ["MAX_ENTRIES", "JsonAnswer", "SharedAnswers", "encoded"]
