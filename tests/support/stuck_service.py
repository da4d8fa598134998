"""Services that drain at once, then never finish their stop: for tests of the stop's bounds."""

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


class StuckOnStop(Service):
    """Drains at once, then waits for good in its ``on_stop`` (a cancel ends it)."""

    name = "stuck-on-stop"

    def topology(self) -> Topology:
        return self.names.base()

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return []

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
        while not self.released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await self.released.wait()


__all__ = ["DeafOnStop", "StuckOnStop"]
