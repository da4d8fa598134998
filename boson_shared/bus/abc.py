"""The transport seam: what every service needs from a message broker.

Two implementations satisfy it: :mod:`boson_shared.bus.amqp` (aio-pika, the real
RabbitMQ) and :mod:`boson_shared.bus.memory` (in-process, for the embedded mode).
One conformance suite runs against both (``tests/integration``).

Semantics both must keep:

* ``publish`` returns only once the broker has taken responsibility for the
  message (publisher confirm); concurrent publishes pipeline their confirms.
* Deliveries are manually acknowledged. A delivery neither acked nor nacked
  when its consumer is cancelled-and-closed or its connection drops goes back
  to the queue and is redelivered (``redelivered=True``).
* ``nack(requeue=False)`` dead-letters through the queue's dead-letter
  exchange; ``nack(requeue=True)`` puts the message back.
* At most ``prefetch`` unacked deliveries per consumer.
* A consumer opened with ``no_ack`` takes each delivery as settled the moment
  the broker sends it (AMQP's ``no-ack``): ``settled`` is true from the
  start, ``ack`` and ``nack`` do nothing, ``prefetch`` bounds nothing, and
  nothing comes back to the queue when the consumer or its connection goes.
  Only for what a later message supersedes (see ``docs/design.md``).
* A queue with ``single_active_consumer`` delivers to one consumer at a time;
  the next takes over when it goes.
* Listeners given to ``watch_connection`` hear ``False`` when the connection
  drops (perhaps more than once while it stays down) and ``True`` once it is
  back with its consumers restored: what a consumer could not have received
  in between is what the monitor must not count as silence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeAlias, runtime_checkable

from boson_shared.contract.topology import Topology

HeaderValue: TypeAlias = str | int | float | bool | bytes | None
Headers: TypeAlias = Mapping[str, HeaderValue]


@runtime_checkable
class Delivery(Protocol):
    """One message handed to a consumer, to be settled exactly once."""

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Headers: ...

    @property
    def exchange(self) -> str: ...

    @property
    def routing_key(self) -> str: ...

    @property
    def message_id(self) -> str | None: ...

    @property
    def redelivered(self) -> bool: ...

    @property
    def settled(self) -> bool:
        """True once ack/nack was called (a second call is a no-op)."""
        ...

    async def ack(self) -> None: ...

    async def nack(self, *, requeue: bool) -> None: ...


DeliveryHandler: TypeAlias = Callable[[Delivery], Awaitable[None]]
ConnectionListener: TypeAlias = Callable[[bool], None]
"""Told ``False`` when the connection drops, ``True`` when it is back and consuming."""


class Subscription(Protocol):
    """A running consumer on one queue."""

    @property
    def queue(self) -> str: ...

    async def cancel(self) -> None:
        """Stop receiving new deliveries. Unsettled ones stay ours until settled."""
        ...


class Transport(Protocol):
    """A broker connection: declare, publish (confirmed), consume."""

    async def connect(self) -> None:
        """Open the connection; raises :class:`~boson_shared.errors.BrokerUnavailableError`."""
        ...

    async def close(self) -> None:
        """Close everything; unsettled deliveries return to their queues."""
        ...

    @property
    def is_connected(self) -> bool: ...

    def watch_connection(self, listener: ConnectionListener) -> None:
        """Tell ``listener`` of every drop (``False``) and recovery (``True``)
        of the connection from now on; it must not block or raise."""
        ...

    async def declare(self, topology: Topology) -> None:
        """Declare exchanges, queues and bindings; idempotent."""
        ...

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
        """Publish one persistent message and wait for the broker's confirm.

        With ``mandatory`` a message that routes to no queue raises
        :class:`~boson_shared.errors.UnroutableError` instead of being
        dropped: use it for work, where an unroutable message is a lost task.
        """
        ...

    async def consume(
        self, queue: str, handler: DeliveryHandler, *, prefetch: int, no_ack: bool = False
    ) -> Subscription:
        """Start consuming ``queue``; ``handler`` settles each delivery (none with ``no_ack``)."""
        ...

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting unacked deliveries)."""
        ...

    async def queue_depth_if_present(self, queue: str) -> int | None:
        """As :meth:`queue_depth`, or None when ``queue`` does not exist."""
        ...

    async def queue_consumers(self, queue: str) -> int:
        """Consumers attached to ``queue`` (0 when it does not exist)."""
        ...

    async def delete_queue(self, queue: str) -> None: ...

    async def delete_exchange(self, exchange: str) -> None: ...


__all__ = [
    "ConnectionListener",
    "Delivery",
    "DeliveryHandler",
    "HeaderValue",
    "Headers",
    "Subscription",
    "Transport",
]
