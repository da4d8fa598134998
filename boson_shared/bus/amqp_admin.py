"""The AMQP transport's admin channel: declares, deletes and passive look-ups.

One plain aiormq channel outside aio-pika's robust bookkeeping, so that an
expected 404 (a depth asked of a missing queue) disturbs nobody and a deleted
queue is not re-created by a later reconnect; it is reopened on demand.
:class:`~boson_shared.bus.amqp.AmqpTransport` has these operations from
:class:`AmqpAdmin`; what exists only while connected is :class:`_Connected`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiormq
from aio_pika.abc import AbstractRobustChannel

from boson_shared.bus.amqp_consumer import AmqpSubscription
from boson_shared.bus.cancel_wins import cancel_wins
from boson_shared.bus.failover import FailoverConnection
from boson_shared.contract.topology import DEFAULT_EXCHANGE, QueueSpec, Topology
from boson_shared.errors import BrokerUnavailableError, ConfigError

# The transport's own logger: these lines read as the transport's, as before the split.
log = logging.getLogger("boson_shared.bus.amqp")

_HOME_NODE_DOWN = "is down or inaccessible"
"""RabbitMQ's words for a durable classic queue whose node is not running."""
_BROKER_ERRORS = (
    aiormq.exceptions.AMQPError,
    aiormq.ChannelInvalidStateError,
    ConnectionError,
    OSError,
)


@dataclass
class _Connected:
    """What exists only while connected; ``None`` stands for "not connected"."""

    connection: FailoverConnection
    publisher: AbstractRobustChannel
    subscriptions: list[AmqpSubscription] = field(default_factory=list)
    admin: aiormq.abc.AbstractChannel | None = None
    admin_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    recycled_at: float = 0.0
    """Monotonic time the publishing channel was last recycled after a nack."""


class AmqpAdmin:
    """The admin operations of :class:`~boson_shared.bus.amqp.AmqpTransport`."""

    _masked: str
    _op_timeout: float
    _queue_specs: dict[str, QueueSpec]
    _queue_bindings: dict[str, dict[tuple[str, str], None]]

    def _require(self) -> _Connected:
        """The connected state, or BrokerUnavailableError (the transport's)."""
        raise NotImplementedError

    def _scrub(self, error: BaseException) -> str:
        """An error's text with no password in it (the transport's)."""
        raise NotImplementedError

    # -- admin channel -----------------------------------------------------

    async def _admin(self, state: _Connected) -> aiormq.abc.AbstractChannel:
        async with state.admin_lock:
            channel = state.admin
            if channel is None or channel.is_closed:
                await state.connection.ready()
                transport = state.connection.transport
                if transport is None:
                    raise BrokerUnavailableError(f"no connection to {self._masked}")
                channel = await transport.connection.channel(publisher_confirms=False)
                state.admin = channel
            return channel

    async def declare(self, topology: Topology) -> None:
        """Declare exchanges, queues, bindings; a mismatch raises ConfigError."""
        state = self._require()
        try:
            with cancel_wins():
                async with asyncio.timeout(self._op_timeout):
                    await self._declare_on(state, topology)
        except (
            aiormq.exceptions.ChannelPreconditionFailed,
            aiormq.exceptions.ChannelNotFoundEntity,
            aiormq.exceptions.ChannelAccessRefused,
        ) as e:
            raise ConfigError(f"topology does not fit the broker: {self._scrub(e)}") from e
        except (*_BROKER_ERRORS, TimeoutError) as e:
            raise BrokerUnavailableError(f"declare failed: {self._scrub(e)}") from e

    async def _declare_on(self, state: _Connected, topology: Topology) -> None:
        channel = await self._admin(state)
        for exchange in topology.exchanges:
            if exchange.name == DEFAULT_EXCHANGE:
                continue
            await channel.exchange_declare(
                exchange=exchange.name,
                exchange_type=exchange.type,
                durable=exchange.durable,
                arguments=dict(exchange.arguments()),
            )
        away: set[str] = set()
        for queue in topology.queues:
            try:
                await channel.queue_declare(
                    queue=queue.name,
                    durable=queue.durable,
                    exclusive=queue.exclusive,
                    arguments=dict(queue.arguments()),
                )
            except aiormq.exceptions.ChannelNotFoundEntity as e:
                if _HOME_NODE_DOWN not in str(e):
                    raise
                # A classic queue (a retry tier) on a cluster node that
                # is down: it exists and comes back with its node, and
                # refusing to start for it would make that node's death
                # stop every process that declares it.
                log.warning("%s is on a broker node that is down; going on without it", queue.name)
                away.add(queue.name)
                channel = await self._admin(state)  # the error closed the last one
                continue
            self._queue_specs[queue.name] = queue
        for binding in topology.bindings:
            if binding.queue in away:
                continue
            await channel.queue_bind(
                queue=binding.queue,
                exchange=binding.exchange,
                routing_key=binding.routing_key,
            )
            bound = self._queue_bindings.setdefault(binding.queue, {})
            bound[(binding.exchange, binding.routing_key)] = None

    async def queue_depth(self, queue: str) -> int:
        """Ready messages in ``queue`` (passive declare); 0 when it does not exist."""
        counts = await self._queue_counts(queue)
        return 0 if counts is None else counts[0]

    async def queue_depth_if_present(self, queue: str) -> int | None:
        """Ready messages in ``queue`` (passive declare); None when it does not exist."""
        counts = await self._queue_counts(queue)
        return None if counts is None else counts[0]

    async def queue_consumers(self, queue: str) -> int:
        """Consumers of ``queue`` (passive declare); 0 when it does not exist."""
        counts = await self._queue_counts(queue)
        return 0 if counts is None else counts[1]

    async def _queue_counts(self, queue: str) -> tuple[int, int] | None:
        """(ready messages, consumers) of ``queue``; None when it does not exist
        (the broker closes the admin channel for that: the next call reopens one)."""
        state = self._require()
        try:
            with cancel_wins():
                async with asyncio.timeout(self._op_timeout):
                    channel = await self._admin(state)
                    ok = await channel.queue_declare(queue=queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        except (*_BROKER_ERRORS, TimeoutError) as e:
            raise BrokerUnavailableError(f"queue lookup failed: {self._scrub(e)}") from e
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` and its messages (a no-op when it does not exist).

        Cancel its consumers first: a robust consumer whose queue vanishes
        re-declares it on recovery.
        """
        self._queue_specs.pop(queue, None)
        self._queue_bindings.pop(queue, None)
        await self._delete(queue, is_queue=True)

    async def delete_exchange(self, exchange: str) -> None:
        """Delete ``exchange`` and its bindings (a no-op when it does not exist)."""
        await self._delete(exchange, is_queue=False)

    async def _delete(self, name: str, *, is_queue: bool) -> None:
        state = self._require()
        try:
            with cancel_wins():
                async with asyncio.timeout(self._op_timeout):
                    channel = await self._admin(state)
                    if is_queue:
                        await channel.queue_delete(queue=name)
                    else:
                        await channel.exchange_delete(exchange=name)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return
        except (*_BROKER_ERRORS, TimeoutError) as e:
            raise BrokerUnavailableError(f"delete of {name!r} failed: {self._scrub(e)}") from e


__all__ = ["AmqpAdmin"]
