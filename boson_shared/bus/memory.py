"""The in-memory transport: RabbitMQ semantics inside one process.

The embedded mode (``boson.embedded()``, ``boson submit`` with no broker)
runs every service on one :class:`MemoryBroker`; each service gets its own
:class:`MemoryTransport`, as it would get its own connection. A publish is
"confirmed" once the message sits in every queue it routes to.

Tests simulate a dropped connection with :meth:`MemoryTransport.drop`: what
the connection held goes back to its queues with ``redelivered=True`` and its
consumers resume at once, which is what the AMQP transport's robust
connection does after a reconnect.
"""

from __future__ import annotations

import logging
import uuid

from boson_shared.bus import headers as _headers
from boson_shared.bus.abc import ConnectionListener, DeliveryHandler, Headers
from boson_shared.bus.memory_broker import Consumer, MemoryBroker, StoredMessage
from boson_shared.bus.runner import HandlerRunner
from boson_shared.contract.topology import Topology
from boson_shared.errors import BrokerUnavailableError, ConfigError

log = logging.getLogger(__name__)


class MemoryDelivery:
    """One delivery from the in-memory broker."""

    __slots__ = ("_consumer", "_message", "_settled", "_tag")

    def __init__(
        self, consumer: Consumer, message: StoredMessage, tag: int, *, settled: bool = False
    ) -> None:
        self._consumer = consumer
        self._message = message
        self._tag = tag
        self._settled = settled
        """True from the start for a ``no_ack`` consumer's delivery."""

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def headers(self) -> Headers:
        return self._message.headers

    @property
    def exchange(self) -> str:
        return self._message.exchange

    @property
    def routing_key(self) -> str:
        return self._message.routing_key

    @property
    def message_id(self) -> str | None:
        return self._message.message_id

    @property
    def redelivered(self) -> bool:
        return self._message.redelivered

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        self._settle(ack=True, requeue=False)

    async def nack(self, *, requeue: bool) -> None:
        self._settle(ack=False, requeue=requeue)

    def _settle(self, *, ack: bool, requeue: bool) -> None:
        if self._settled:
            return
        self._settled = True
        consumer = self._consumer
        if not consumer.queue.settle(consumer, self._tag, ack=ack, requeue=requeue):
            # The connection dropped or the queue went away: the broker has
            # already taken the message back, as RabbitMQ would.
            log.debug("late settle of a delivery from %r ignored", consumer.queue.name)

    def __repr__(self) -> str:
        return f"<MemoryDelivery {self._consumer.queue.name} #{self._tag}>"


class MemorySubscription:
    """A consumer on one queue of the in-memory broker."""

    def __init__(
        self,
        transport: MemoryTransport,
        queue: str,
        handler: DeliveryHandler,
        prefetch: int,
        *,
        no_ack: bool = False,
    ) -> None:
        self._transport = transport
        self._queue = queue
        self._prefetch = 0 if no_ack else prefetch
        self._no_ack = no_ack
        self._runner = HandlerRunner(queue, handler)
        self._consumer: Consumer | None = None
        self._cancelled = False

    @property
    def queue(self) -> str:
        return self._queue

    def _attach(self) -> None:
        found = self._transport.broker.queue(self._queue)
        if found is None:
            raise ConfigError(f"cannot consume {self._queue!r}: the queue does not exist")
        consumer = Consumer(found, self._prefetch, self._deliver)
        self._consumer = consumer
        found.attach(consumer)

    def _deliver(self, message: StoredMessage, tag: int) -> None:
        consumer = self._consumer
        assert consumer is not None  # deliveries only come while attached
        if self._no_ack:
            # Settled as it is sent, as RabbitMQ does for a no-ack consumer.
            consumer.unacked.pop(tag, None)
        self._runner.spawn(MemoryDelivery(consumer, message, tag, settled=self._no_ack))

    def _detach(self, *, requeue: bool) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.queue.detach(consumer, requeue_unacked=requeue)

    async def cancel(self) -> None:
        """Stop new deliveries; held ones stay ours until settled or closed."""
        if self._cancelled:
            return
        self._cancelled = True
        consumer = self._consumer
        if consumer is not None and consumer.attached:
            consumer.queue.detach(consumer, requeue_unacked=False)

    def _drop(self) -> None:
        """The connection went away and came back: requeue, then resume."""
        self._detach(requeue=True)
        if not self._cancelled and self._transport.broker.queue(self._queue) is not None:
            self._attach()

    async def _close(self) -> None:
        self._cancelled = True
        await self._runner.cancel_all()
        self._detach(requeue=True)


class MemoryTransport:
    """:class:`~boson_shared.bus.abc.Transport` on a shared :class:`MemoryBroker`."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self._connected = False
        self._subscriptions: list[MemorySubscription] = []
        self._listeners: list[ConnectionListener] = []

    @property
    def is_connected(self) -> bool:
        return self._connected

    def watch_connection(self, listener: ConnectionListener) -> None:
        self._listeners.append(listener)

    def _require(self) -> MemoryBroker:
        if not self._connected:
            raise BrokerUnavailableError("the in-memory transport is not connected")
        return self.broker

    async def connect(self) -> None:
        self._connected = True

    async def close(self) -> None:
        """Close every consumer; unsettled deliveries return to their queues."""
        self._connected = False
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription._close()

    async def drop(self) -> None:
        """Simulate a lost connection that recovers at once.

        Unsettled deliveries go back to their queues (``redelivered=True``);
        their late acks are ignored; the consumers resume consuming. Listeners
        hear the drop and the recovery, in that order.
        """
        self._require()
        for listener in self._listeners:
            listener(False)
        for subscription in self._subscriptions:
            subscription._drop()
        for listener in self._listeners:
            listener(True)

    async def declare(self, topology: Topology) -> None:
        broker = self._require()
        for exchange in topology.exchanges:
            broker.declare_exchange(exchange)
        for queue in topology.queues:
            broker.declare_queue(queue)
        for binding in topology.bindings:
            broker.bind(binding)

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
        """Enqueue the message; ``mandatory`` makes an unroutable one an error.

        Raises :class:`~boson_shared.errors.PublishNotConfirmedError` when the
        exchange does not exist or (with ``mandatory``) no queue is bound.
        Without a ``message_id`` one is assigned, as the AMQP client does.
        """
        broker = self._require()
        checked = _headers.outgoing(headers)
        broker.publish(
            exchange,
            routing_key,
            body,
            checked,
            message_id if message_id is not None else uuid.uuid4().hex,
            mandatory=mandatory,
        )

    async def consume(
        self, queue: str, handler: DeliveryHandler, *, prefetch: int, no_ack: bool = False
    ) -> MemorySubscription:
        """Consume ``queue``, at most ``prefetch`` unsettled (0 = no limit; no bound with
        ``no_ack``)."""
        self._require()
        if prefetch < 0:
            raise ValueError("prefetch must be >= 0")
        subscription = MemorySubscription(self, queue, handler, prefetch, no_ack=no_ack)
        subscription._attach()
        self._subscriptions.append(subscription)
        return subscription

    async def queue_depth(self, queue: str) -> int:
        """Ready messages in ``queue``; 0 when it does not exist."""
        return self._require().depth(queue)

    async def queue_depth_if_present(self, queue: str) -> int | None:
        """Ready messages in ``queue``; None when it does not exist."""
        broker = self._require()
        return None if broker.queue(queue) is None else broker.depth(queue)

    async def queue_consumers(self, queue: str) -> int:
        """Consumers of ``queue``; 0 when it does not exist."""
        found = self._require().queue(queue)
        return 0 if found is None else len(found.consumers)

    async def delete_queue(self, queue: str) -> None:
        self._require().delete_queue(queue)

    async def delete_exchange(self, exchange: str) -> None:
        self._require().delete_exchange(exchange)

    def __repr__(self) -> str:
        state = "connected" if self._connected else "closed"
        return f"<MemoryTransport {state}>"


__all__ = ["MemoryBroker", "MemoryDelivery", "MemorySubscription", "MemoryTransport"]
