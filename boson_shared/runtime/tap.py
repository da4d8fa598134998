"""A tap: a temporary queue bound beside the real consumers, to watch traffic.

Bound to the same exchange and routing keys as a real queue, it receives a
copy of every envelope that crosses — the way ``boson demo`` reads the
placement that really happened, and tests count envelopes *at the broker*
rather than trusting a publisher's own counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from boson_shared.bus.abc import Delivery, Subscription, Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import Message
from boson_shared.contract.topology import BindingSpec, QueueSpec, Topology


class Tap:
    """Collects every envelope routed to ``queue`` (decoded on demand)."""

    def __init__(
        self,
        transport: Transport,
        codec: Codec,
        queue: str,
        bindings: Sequence[tuple[str, str]],
    ) -> None:
        self._transport = transport
        self._codec = codec
        self.queue = queue
        self._topology = Topology(
            # Exclusive: gone with the connection, made again (bound) on
            # whichever broker node the connection fails over to.
            queues=(QueueSpec(queue, queue_type="classic", durable=False, exclusive=True),),
            bindings=tuple(BindingSpec(queue, exchange, key) for exchange, key in bindings),
        )
        self.envelopes: list[bytes] = []
        self._messages: list[Message] = []
        self._decoded = 0
        """Envelopes decoded into ``_messages`` so far."""
        self._arrived = asyncio.Event()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        if not self._transport.is_connected:
            await self._transport.connect()
        await self._transport.declare(self._topology)
        self._subscription = await self._transport.consume(
            self.queue, self._on_delivery, prefetch=1000
        )

    async def _on_delivery(self, delivery: Delivery) -> None:
        # Kept as it came: decoding waits until someone looks, so a tap
        # watching a benchmark costs its process only the deliveries.
        self.envelopes.append(delivery.body)
        await delivery.ack()
        self._arrived.set()

    @property
    def messages(self) -> list[Message]:
        """Every message seen so far, in order (what arrived since the last look
        is decoded now)."""
        while self._decoded < len(self.envelopes):
            self._messages.extend(self._codec.decode(self.envelopes[self._decoded]))
            self._decoded += 1
        return self._messages

    async def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0
    ) -> Message:
        """The first message (seen so far or yet to come) matching ``predicate``."""
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for message in self.messages[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.messages)
                self._arrived.clear()
                await self._arrived.wait()

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None
        await self._transport.delete_queue(self.queue)


__all__ = ["Tap"]
