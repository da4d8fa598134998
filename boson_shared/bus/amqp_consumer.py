"""Deliveries and subscriptions of the AMQP transport.

Each subscription has its own channel, so ``basic.qos`` gives it its own
prefetch, and one consumer's channel error cannot stop another. The channel
is robust: after a reconnect aio-pika re-declares the queue and re-consumes
with the same callback, so the subscription resumes without our help.

A delivery remembers the channel it came on. Settling it after that channel
died would use a delivery tag the new channel does not know; aio-pika refuses
(the old channel is closed), we log that at debug level and move on — the
broker has already put the message back and will redeliver it.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustQueue

from boson_shared.bus import headers as _headers
from boson_shared.bus.abc import DeliveryHandler, Headers
from boson_shared.bus.runner import HandlerRunner
from boson_shared.contract.topology import QueueSpec

log = logging.getLogger(__name__)

# What a settle on a dead channel raises: aiormq's closed-channel RuntimeError,
# AMQP errors, socket errors.
_SETTLE_ERRORS = (aiormq.exceptions.AMQPError, aiormq.ChannelInvalidStateError, ConnectionError)


class AmqpDelivery:
    """One delivery from RabbitMQ, settled at most once."""

    __slots__ = ("_headers", "_message", "_owner", "_settled")

    def __init__(
        self, message: AbstractIncomingMessage, owner: AmqpSubscription, *, settled: bool = False
    ) -> None:
        self._message = message
        self._owner = owner
        self._headers = _headers.incoming(message.headers)
        self._settled = settled
        """True from the start on a ``no_ack`` consumer: the broker settled it as it sent it."""

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def headers(self) -> Headers:
        return self._headers

    @property
    def exchange(self) -> str:
        return self._message.exchange or ""

    @property
    def routing_key(self) -> str:
        return self._message.routing_key or ""

    @property
    def message_id(self) -> str | None:
        return self._message.message_id

    @property
    def redelivered(self) -> bool:
        return bool(self._message.redelivered)

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        if self._settled:
            return
        self._settled = True
        try:
            await self._message.ack()
        except _SETTLE_ERRORS as e:
            log.debug("ack after the channel was lost: %s (it will be redelivered)", e)
        await self._owner._settled_one(self)

    async def nack(self, *, requeue: bool) -> None:
        if self._settled:
            return
        self._settled = True
        try:
            await self._message.nack(requeue=requeue)
        except _SETTLE_ERRORS as e:
            log.debug("nack after the channel was lost: %s (it will be redelivered)", e)
        await self._owner._settled_one(self)

    def __repr__(self) -> str:
        return f"<AmqpDelivery {self.routing_key!r} tag={self._message.delivery_tag}>"


class AmqpSubscription:
    """A consumer with its own robust channel."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue: AbstractRobustQueue,
        handler: DeliveryHandler,
        *,
        op_timeout: float,
        no_ack: bool = False,
    ) -> None:
        self._channel = channel
        self._no_ack = no_ack
        self._queue = queue
        self._runner = HandlerRunner(queue.name, handler)
        self._timeout = op_timeout
        self._tag: str | None = None
        self._cancelled = False
        self._closing = False
        self._closed = False
        # Deliveries handed out and not yet settled: the channel must stay
        # open for them after a cancel (acks travel on it).
        self._unsettled: set[AmqpDelivery] = set()

    @property
    def queue(self) -> str:
        return self._queue.name

    async def start(self) -> None:
        self._tag = await self._queue.consume(
            self._on_message, no_ack=self._no_ack, timeout=self._timeout
        )

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aiormq runs this in a task it cancels when the channel closes; the
        # handler gets a task of ours instead, so a dropped connection does
        # not cancel work half done.
        if self._closing:
            # Arrived while closing: leave it unacked, the channel close
            # hands it back to the queue.
            return
        delivery = AmqpDelivery(message, self, settled=self._no_ack)
        if not self._no_ack:
            self._unsettled.add(delivery)
        self._runner.spawn(delivery)

    async def _settled_one(self, delivery: AmqpDelivery) -> None:
        self._unsettled.discard(delivery)
        if self._cancelled and not self._unsettled:
            # Often called from inside a handler: close the channel only,
            # never cancel the handler that is settling.
            await self._close_channel()

    async def cancel(self) -> None:
        """Stop new deliveries; held ones stay ours until settled or closed.

        The channel stays open while deliveries are unsettled (their acks
        travel on it) and closes with the last settle, or with the transport.
        """
        tag, self._tag = self._tag, None
        self._cancelled = True
        if tag is None or self._closed:
            return
        try:
            await self._queue.cancel(tag, timeout=self._timeout)
        except (*_SETTLE_ERRORS, TimeoutError) as e:
            # A lost channel has no consumer to cancel; RobustQueue.cancel has
            # already struck it from what a reconnect restores.
            log.debug("cancel of a consumer on %r: %s", self.queue, e)
        if not self._unsettled:
            await self._close_channel()

    async def close(self) -> None:
        """Cancel running handlers, then close the channel (unacked → requeued)."""
        self._closing = True
        self._unsettled.clear()
        await self._runner.cancel_all()
        await self._close_channel()

    async def _close_channel(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(self._timeout):
                await self._channel.close()
        except (*_SETTLE_ERRORS, TimeoutError) as e:
            log.debug("closing the channel of %r: %s", self.queue, e)


async def open_subscription(
    connection: aio_pika.RobustConnection,
    queue: str,
    handler: DeliveryHandler,
    *,
    prefetch: int,
    no_ack: bool = False,
    spec: QueueSpec | None,
    bindings: tuple[tuple[str, str], ...] = (),
    op_timeout: float,
) -> AmqpSubscription:
    """Open a channel, set its prefetch, bind the queue object and consume
    (with ``no_ack``, AMQP's no-ack: the broker settles as it sends, and the
    prefetch bounds nothing).

    ``spec`` describes the queue when this transport declared it: the
    channel then re-declares it on reconnect, with ``bindings`` (exchange,
    routing key) made again through the robust queue — a queue that expired
    while we were away comes back bound, and an exclusive queue, gone with
    its old connection, is made anew on the node the connection is now on.
    Otherwise the declare is passive.
    """
    channel = connection.channel(publisher_confirms=False)
    await channel.initialize(timeout=op_timeout)
    try:
        await channel.set_qos(prefetch_count=prefetch, timeout=op_timeout)
        if spec is None:
            robust_queue = await channel.declare_queue(queue, passive=True, timeout=op_timeout)
        else:
            robust_queue = await channel.declare_queue(
                queue,
                durable=spec.durable,
                exclusive=spec.exclusive,
                arguments=dict(spec.arguments()),
                timeout=op_timeout,
            )
            for exchange, routing_key in bindings:
                await robust_queue.bind(exchange, routing_key, timeout=op_timeout)
        subscription = AmqpSubscription(
            channel, robust_queue, handler, op_timeout=op_timeout, no_ack=no_ack
        )
        await subscription.start()
    except BaseException:
        # Close even when the error already closed it: that stops the robust
        # channel from reopening itself behind our back.
        try:
            await channel.close()
        except (*_SETTLE_ERRORS, RuntimeError) as e:
            log.debug("closing a failed consumer channel: %s", e)
        raise
    return subscription


__all__ = ["AmqpDelivery", "AmqpSubscription", "open_subscription"]
