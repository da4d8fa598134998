"""A service that drains at once, then never finishes its stop: for tests of the stop's bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from boson_shared.contract.topology import Topology
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.service import Service


class StuckOnStop(Service):
    """Drains at once, then waits for good in its ``on_stop``."""

    name = "stuck-on-stop"

    def topology(self) -> Topology:
        return self.names.base()

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return []

    async def on_stop(self) -> None:
        await asyncio.Event().wait()


__all__ = ["StuckOnStop"]
