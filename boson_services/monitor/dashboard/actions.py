"""The dashboard's actions on tasks, behind a small interface.

The API asks a :class:`Canceller` to cancel; the monitor supplies one that
publishes the request over the bus from the monitor's own event loop
(:class:`OnLoop` carries the call across from the dashboard's thread). A
dashboard given none answers cancel with a clear 501: it never pretends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

CANCEL_TIMEOUT_S = 10.0


class Canceller(Protocol):
    """Asks for tasks to be cancelled; returns once the request is sent."""

    async def cancel(self, task_ids: Sequence[str]) -> None: ...


class OnLoop:
    """A :class:`Canceller` whose calls run on another event loop (the monitor's)."""

    def __init__(self, inner: Canceller, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.loop = loop

    async def cancel(self, task_ids: Sequence[str]) -> None:
        future = asyncio.run_coroutine_threadsafe(self.inner.cancel(list(task_ids)), self.loop)
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()
            raise


__all__ = ["CANCEL_TIMEOUT_S", "Canceller", "OnLoop"]
