"""The in-process broker state behind :class:`~boson_shared.bus.memory.MemoryTransport`.

It keeps RabbitMQ's semantics where the pipeline relies on them: topic,
fanout and direct exchanges plus the default exchange; round-robin across a
queue's consumers, or one at a time with ``x-single-active-consumer``; a
per-consumer prefetch; requeue with ``redelivered=True``; dead-lettering on
reject and on ``x-message-ttl`` expiry (which is how delayed-retry tiers
work), with the message's own routing key when the queue names none; an
exchange's alternate exchange. Everything is driven by calls and loop timers, never by polling: a
publish hands a message straight to a consumer with room, an expiry is one
``call_at`` per queue head.

Not modelled: ``x-expires`` (accepted, never deletes), queue length limits,
dead-letter cycle detection, priorities, transactions.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from boson_shared.bus.abc import HeaderValue
from boson_shared.bus.topic import TopicPattern
from boson_shared.contract.topology import DEFAULT_EXCHANGE, BindingSpec, ExchangeSpec, QueueSpec
from boson_shared.errors import ConfigError, PublishNotConfirmedError, UnroutableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class StoredMessage:
    """One message in one queue (dead-lettering makes a new one)."""

    body: bytes
    headers: Mapping[str, HeaderValue]
    exchange: str
    routing_key: str
    message_id: str | None
    redelivered: bool = False
    expires_at: float | None = None


@dataclass(eq=False)
class Consumer:
    """A queue's view of one subscription: how many it holds and where to send."""

    queue: Queue
    prefetch: int
    deliver: Callable[[StoredMessage, int], None]
    unacked: dict[int, StoredMessage] = field(default_factory=dict)
    attached: bool = True

    @property
    def has_room(self) -> bool:
        return self.prefetch == 0 or len(self.unacked) < self.prefetch


@dataclass(frozen=True)
class _Exchange:
    spec: ExchangeSpec
    # (queue, binding key) → compiled pattern; a dict keeps bindings unique.
    bindings: dict[tuple[str, str], TopicPattern] = field(default_factory=dict)

    def route(self, routing_key: str) -> list[str]:
        kind = self.spec.type
        queues: dict[str, None] = {}
        for (queue, key), pattern in self.bindings.items():
            if (
                kind == "fanout"
                or (kind == "direct" and key == routing_key)
                or (kind == "topic" and pattern.matches(routing_key))
            ):
                queues[queue] = None
        return list(queues)


class Queue:
    """Ready messages, consumers, and the expiry timer of one queue."""

    def __init__(self, broker: MemoryBroker, spec: QueueSpec) -> None:
        self.broker = broker
        self.spec = spec
        self.arguments = spec.arguments()
        self.ready: deque[StoredMessage] = deque()
        self.consumers: list[Consumer] = []
        self._next = 0
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        ttl = spec.message_ttl_ms
        self._ttl_s = None if ttl is None else ttl / 1000

    @property
    def name(self) -> str:
        return self.spec.name

    def enqueue(self, message: StoredMessage, *, front: bool = False) -> None:
        if front:
            self.ready.appendleft(message)
        else:
            if self._ttl_s is not None:
                message = replace(message, expires_at=self.broker.now() + self._ttl_s)
            self.ready.append(message)
        self.dispatch()

    def attach(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.dispatch()

    def detach(self, consumer: Consumer, *, requeue_unacked: bool) -> None:
        consumer.attached = False
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        if requeue_unacked and consumer.unacked:
            # Back to the head in delivery order, as RabbitMQ puts requeued
            # messages back where they were.
            for message in reversed(list(consumer.unacked.values())):
                self.ready.appendleft(replace(message, redelivered=True))
            consumer.unacked.clear()
        self.dispatch()

    def settle(self, consumer: Consumer, tag: int, *, ack: bool, requeue: bool) -> bool:
        """Ack, requeue or reject one delivery; False if it is no longer held."""
        message = consumer.unacked.pop(tag, None)
        if message is None or self.closed:
            return False
        if not ack:
            if requeue:
                self.ready.appendleft(replace(message, redelivered=True))
            else:
                self.broker.dead_letter(self, message, "rejected")
        self.dispatch()
        return True

    def _pick(self) -> Consumer | None:
        if not self.consumers:
            return None
        if self.spec.single_active_consumer:
            active = self.consumers[0]
            return active if active.has_room else None
        count = len(self.consumers)
        for offset in range(count):
            index = (self._next + offset) % count
            candidate = self.consumers[index]
            if candidate.has_room:
                self._next = (index + 1) % count
                return candidate
        return None

    def dispatch(self) -> None:
        while self.ready:
            consumer = self._pick()
            if consumer is None:
                break
            message = self.ready.popleft()
            tag = self.broker.next_tag()
            consumer.unacked[tag] = message
            consumer.deliver(message, tag)
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        head = self.ready[0] if self.ready else None
        when = None if head is None else head.expires_at
        if self._timer is not None:
            if when is not None and self._timer.when() <= when:
                return
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = self.broker.loop().call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self.broker.now()
        # Like RabbitMQ, only the head expires: a queue-wide TTL keeps the
        # queue in expiry order except for requeued messages.
        while self.ready:
            expires_at = self.ready[0].expires_at
            if expires_at is None or expires_at > now:
                break
            self.broker.dead_letter(self, self.ready.popleft(), "expired")
        self._schedule_expiry()

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Like a deleted RabbitMQ queue: its consumers are cancelled and what
        # they held is gone, so a late ack finds nothing to settle.
        for consumer in self.consumers:
            consumer.attached = False
            consumer.unacked.clear()
        self.consumers.clear()
        self.ready.clear()


class MemoryBroker:
    """Exchanges, queues and bindings shared by every :class:`MemoryTransport`.

    Several transports on one broker behave like several connections to one
    RabbitMQ. Create it inside the event loop that uses it.
    """

    def __init__(self) -> None:
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, Queue] = {}
        self._tags = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- clock -------------------------------------------------------------

    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop().time()

    def next_tag(self) -> int:
        return next(self._tags)

    # -- topology ----------------------------------------------------------

    def declare_exchange(self, spec: ExchangeSpec) -> None:
        if spec.name == DEFAULT_EXCHANGE or spec.name.startswith("amq."):
            raise ConfigError(f"exchange name {spec.name!r} is reserved")
        existing = self._exchanges.get(spec.name)
        if existing is None:
            self._exchanges[spec.name] = _Exchange(spec)
        elif existing.spec != spec:
            raise ConfigError(
                f"exchange {spec.name!r} exists as {existing.spec.type}"
                f" (durable={existing.spec.durable}), not as declared"
            )

    def declare_queue(self, spec: QueueSpec) -> None:
        existing = self._queues.get(spec.name)
        if existing is None:
            self._queues[spec.name] = Queue(self, spec)
        elif existing.arguments != spec.arguments() or existing.spec.durable != spec.durable:
            raise ConfigError(
                f"queue {spec.name!r} exists with arguments {existing.arguments},"
                f" not {spec.arguments()}"
            )

    def bind(self, binding: BindingSpec) -> None:
        exchange = self._exchanges.get(binding.exchange)
        if exchange is None:
            raise ConfigError(f"cannot bind to exchange {binding.exchange!r}: it does not exist")
        if binding.queue not in self._queues:
            raise ConfigError(f"cannot bind queue {binding.queue!r}: it does not exist")
        key = (binding.queue, binding.routing_key)
        exchange.bindings.setdefault(key, TopicPattern(binding.routing_key))

    def delete_queue(self, name: str) -> None:
        queue = self._queues.pop(name, None)
        if queue is None:
            return
        queue.close()
        for exchange in self._exchanges.values():
            for key in [key for key in exchange.bindings if key[0] == name]:
                del exchange.bindings[key]

    def delete_exchange(self, name: str) -> None:
        self._exchanges.pop(name, None)

    def queues(self) -> list[str]:
        """Names of the queues that exist now (for tests and ``boson status``)."""
        return sorted(self._queues)

    def queue(self, name: str) -> Queue | None:
        return self._queues.get(name)

    def depth(self, name: str) -> int:
        queue = self._queues.get(name)
        return 0 if queue is None else len(queue.ready)

    # -- messages ----------------------------------------------------------

    def route(self, exchange: str, routing_key: str) -> list[Queue]:
        if exchange == DEFAULT_EXCHANGE:
            queue = self._queues.get(routing_key)
            return [] if queue is None else [queue]
        found = self._exchanges.get(exchange)
        if found is None:
            raise PublishNotConfirmedError(f"exchange {exchange!r} does not exist")
        queues = [self._queues[name] for name in found.route(routing_key) if name in self._queues]
        alternate = found.spec.alternate_exchange
        if not queues and alternate is not None and alternate in self._exchanges:
            # RabbitMQ's alternate exchange: what routes nowhere here goes there.
            return self.route(alternate, routing_key)
        return queues

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: Mapping[str, HeaderValue],
        message_id: str | None,
        *,
        mandatory: bool,
    ) -> None:
        """Enqueue in every queue the message routes to (the "confirm")."""
        queues = self.route(exchange, routing_key)
        if not queues:
            if mandatory:
                raise UnroutableError(
                    f"unroutable: no queue bound to {exchange!r} for {routing_key!r}"
                )
            log.debug("dropped unroutable message on %r with key %r", exchange, routing_key)
            return
        message = StoredMessage(
            body=bytes(body),
            headers=MappingProxyType(dict(headers)),
            exchange=exchange,
            routing_key=routing_key,
            message_id=message_id,
        )
        for queue in queues:
            queue.enqueue(message)

    def dead_letter(self, queue: Queue, message: StoredMessage, reason: str) -> None:
        """Send ``message`` to ``queue``'s dead-letter exchange, or drop it."""
        args: Mapping[str, Any] = queue.arguments
        dlx = args.get("x-dead-letter-exchange")
        if dlx is None:
            return
        routing_key = args.get("x-dead-letter-routing-key", message.routing_key)
        headers = dict(message.headers)
        if "x-first-death-reason" not in headers:
            headers["x-first-death-exchange"] = message.exchange
            headers["x-first-death-queue"] = queue.name
            headers["x-first-death-reason"] = reason
        try:
            targets = self.route(str(dlx), str(routing_key))
        except PublishNotConfirmedError:
            # RabbitMQ drops a dead letter whose exchange is missing.
            log.debug("dead-letter exchange %r of %r is missing", dlx, queue.name)
            return
        copy = StoredMessage(
            body=message.body,
            headers=MappingProxyType(headers),
            exchange=str(dlx),
            routing_key=str(routing_key),
            message_id=message.message_id,
        )
        for target in targets:
            target.enqueue(copy)

    def close(self) -> None:
        """Cancel expiry timers and forget everything."""
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
        self._exchanges.clear()


__all__ = ["Consumer", "MemoryBroker", "Queue", "StoredMessage"]
