"""Test services for the stop paths' bounds, and a wait that swallows its cancels.

:class:`BareService` has the namespace's base topology and no consumers: the
runtime alone, for tests to add a periodic job or a stop of their own to.
:func:`deaf_to_cancels` is what a library's close stuck for good looks like
to whoever cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.topology import Topology
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.service import Service
from boson_shared.settings import BosonSettings


async def deaf_to_cancels(released: asyncio.Event | None = None) -> None:
    """Wait until ``released`` is set (for good without one), swallowing every cancel."""
    until = released if released is not None else asyncio.Event()
    while not until.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await until.wait()


class BareService(Service):
    """The namespace's base topology, no consumers."""

    def topology(self) -> Topology:
        return self.names.base()

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return []


class StuckOnStop(BareService):
    """Drains at once, then waits for good in its ``on_stop`` (a cancel ends it)."""

    name = "stuck-on-stop"

    async def on_stop(self) -> None:
        await asyncio.Event().wait()


class DeafOnStop(StuckOnStop):
    """Drains at once, then waits in its ``on_stop`` swallowing every cancel
    until :attr:`released` is set (a test's clean-up)."""

    name = "deaf-on-stop"

    def __init__(self, settings: BosonSettings, transport: Transport, codec: Codec) -> None:
        super().__init__(settings, transport, codec)
        self.released = asyncio.Event()

    async def on_stop(self) -> None:
        await deaf_to_cancels(self.released)


__all__ = ["BareService", "DeafOnStop", "StuckOnStop", "deaf_to_cancels"]
