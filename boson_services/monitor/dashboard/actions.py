"""The dashboard's actions on tasks, behind a small interface.

The API asks a :class:`Canceller` to cancel; the monitor supplies a
:class:`BusCanceller`, which publishes the same :class:`CancelTask` command
``Client.cancel`` publishes, from the monitor's own event loop and publisher
(:class:`OnLoop` carries the call across from the dashboard's thread). Every
balancer and executor hears it; the one that holds the task stops it, and
the task record then shows it ``cancelled``. A dashboard given no canceller
answers cancel with a clear 501: it never pretends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from boson_shared.contract.messages import MAX_CANCEL_IDS, CancelTask, Message
from boson_shared.contract.topology import RK_CANCEL, Names
from boson_shared.runtime.publisher import Route

CANCEL_TIMEOUT_S = 10.0


class Canceller(Protocol):
    """Asks for tasks to be cancelled; returns once the request is sent."""

    async def cancel(self, task_ids: Sequence[str]) -> None: ...


class BusCanceller:
    """Publishes :class:`CancelTask` commands on the events exchange, as a client would.

    Holders answer to ``reply_to``; nobody listens there, since the task
    record shows the outcome (a ``cancelled`` state) to the page.
    """

    def __init__(
        self,
        publish: Callable[[Route, Message], Awaitable[None]],
        names: Names,
        reply_to: str,
    ) -> None:
        self.publish = publish
        self.route = Route(names.events_exchange, RK_CANCEL)
        self.reply_to = reply_to

    async def cancel(self, task_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        for start in range(0, len(ids), MAX_CANCEL_IDS):
            command = CancelTask(
                task_ids=tuple(ids[start : start + MAX_CANCEL_IDS]), reply_to=self.reply_to
            )
            await self.publish(self.route, command)


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


__all__ = ["CANCEL_TIMEOUT_S", "BusCanceller", "Canceller", "OnLoop"]
