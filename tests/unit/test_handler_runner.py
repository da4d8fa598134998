"""HandlerRunner.cancel_all waits at most its grace, whatever the handlers do."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from boson_shared.bus.abc import Delivery, Headers
from boson_shared.bus.runner import HandlerRunner

pytestmark = pytest.mark.timeout(60)


class Held:
    """A delivery nobody settles (the handler under test never gets that far)."""

    def __init__(self) -> None:
        self.body = b""
        self.headers: Headers = {}
        self.exchange = ""
        self.routing_key = "held"
        self.message_id: str | None = None
        self.redelivered = False
        self.settled = False

    async def ack(self) -> None:
        self.settled = True

    async def nack(self, *, requeue: bool) -> None:
        self.settled = True


async def test_cancel_all_gives_up_on_a_handler_that_carries_on_after_its_cancel() -> None:
    release = asyncio.Event()

    async def carries_on(delivery: Delivery) -> None:
        # Each cancel lost on the way (as a library can turn one into an
        # error of its own), until the test lets it go.
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    runner = HandlerRunner("held", carries_on)
    runner.spawn(Held())
    await asyncio.sleep(0.01)
    began = time.monotonic()
    cancelling = asyncio.create_task(runner.cancel_all(grace=0.2))
    try:
        # asyncio.wait: a timeout here would itself wait for the handler.
        await asyncio.wait({cancelling}, timeout=5)
        took = time.monotonic() - began
    finally:
        release.set()
        await cancelling
    assert took < 2.0
