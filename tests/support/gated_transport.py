"""A transport whose publish confirms the test controls (the publisher's fake broker)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from boson_shared.bus.abc import ConnectionListener, DeliveryHandler, Headers, Subscription
from boson_shared.contract.topology import Topology


@dataclass
class Sent:
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, object]
    message_id: str | None


@dataclass
class GatedTransport:
    """Records publishes; each waits for the test to confirm (or fail) it."""

    auto_confirm: bool = False
    sent: list[Sent] = field(default_factory=list)
    waiting: list[asyncio.Future[None]] = field(default_factory=list)
    fail_with: Exception | None = None

    @property
    def is_connected(self) -> bool:
        return True

    def watch_connection(self, listener: ConnectionListener) -> None:
        return None  # never drops

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def declare(self, topology: Topology) -> None:
        return None

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Headers | None = None,
        message_id: str | None = None,
        mandatory: bool = False,
    ) -> None:
        self.sent.append(Sent(exchange, routing_key, body, dict(headers or {}), message_id))
        if self.fail_with is not None:
            raise self.fail_with
        if self.auto_confirm:
            await asyncio.sleep(0)
            return
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(confirm)
        await confirm

    async def consume(
        self, queue: str, handler: DeliveryHandler, *, prefetch: int, no_ack: bool = False
    ) -> Subscription:
        raise NotImplementedError

    async def queue_depth(self, queue: str) -> int:
        raise NotImplementedError

    async def queue_depth_if_present(self, queue: str) -> int | None:
        raise NotImplementedError

    async def queue_consumers(self, queue: str) -> int:
        raise NotImplementedError

    async def delete_queue(self, queue: str) -> None:
        raise NotImplementedError

    async def delete_exchange(self, exchange: str) -> None:
        raise NotImplementedError

    def confirm_all(self) -> int:
        waiting, self.waiting = self.waiting, []
        for confirm in waiting:
            if not confirm.done():
                confirm.set_result(None)
        return len(waiting)


__all__ = ["GatedTransport", "Sent"]
