"""Confirmed publishing with adaptive batching.

Each route (exchange + routing key + message kind) is a *lane*. A lane with
nothing in flight sends a message at once, alone: an idle pipeline answers in
one broker round trip. While a lane's envelope awaits its publisher confirm,
new messages queue behind it and leave together in the next envelope (up to
``max_items`` items; split when the encoded envelope passes ``max_bytes``).
The confirm round trip is the batching window, so no timer is needed and a
burst packs itself: under load, many items per envelope; idle, one.

A route may also *linger* (``Route.linger_s``): its messages wait up to that
long for company before they leave (or until ``max_items`` have gathered), so
that a stream nobody waits on — lifecycle events for the task record — packs
many items per envelope even at a moderate rate, and its consumer decodes and
acknowledges one envelope per batch instead of one per item. ``close`` sends
what lingers before it waits, so a shutdown loses none of it.

``publish`` returns only when the envelope carrying the message is confirmed,
so a consumer can ack its input after its effects are safe (docs/design.md#delivery).
A call fails as soon as one envelope of its messages fails; what is left of
it and has not left yet is dropped, not sent behind the caller's retry.
Lanes pipeline up to ``max_in_flight`` envelopes each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from boson_shared.bus.abc import Headers, Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import Message
from boson_shared.contract.topology import (
    HEADER_ERROR,
    HEADER_KIND,
    HEADER_REASON,
    REASON_UNROUTABLE,
    Names,
)
from boson_shared.errors import UnroutableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message goes: an exchange and a routing key.

    ``mandatory`` routes are the ones where a message that reaches no queue is
    lost work (a task, a data request): the broker returns it and the
    publisher gets :class:`~boson_shared.errors.UnroutableError` instead of a
    silent drop. Events nobody listens to are not mandatory.

    ``park_in`` names an exchange (the dead-letter exchange) where a message
    that reaches no queue is parked instead, with the reason ``unroutable``:
    for replies a client waits for (results, data replies), whose publisher
    cannot wait for the client's queue to come back. It implies ``mandatory``.
    """

    exchange: str
    routing_key: str
    mandatory: bool = False
    park_in: str | None = None
    linger_s: float = 0.0
    """Hold a message up to this long for more to join its envelope (see the
    module docstring); 0 sends as soon as the lane is free."""

    @classmethod
    def reply(cls, names: Names, routing_key: str) -> Route:
        """A reply on the events exchange, parked in the dead letters if it routes nowhere."""
        return cls(names.events_exchange, routing_key, park_in=names.dead_exchange)


class _Waiter:
    """One caller waiting for its messages' confirms: one future per call, not per message."""

    __slots__ = ("future", "remaining")

    def __init__(self, count: int) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.remaining = count

    def confirmed(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(None)

    def failed(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


_Pending = tuple[Message, _Waiter]


@dataclass(slots=True)
class _Lane:
    route: Route
    kind: str
    pending: deque[_Pending] = field(default_factory=deque)
    in_flight: int = 0
    due: bool = False
    """A lingering lane whose wait is over: what is pending leaves when it can."""
    timer: asyncio.TimerHandle | None = None


@dataclass
class PublisherStats:
    """Counters for tests and metrics: how many items went in how many envelopes."""

    items: int = 0
    envelopes: int = 0
    confirm_seconds: float = 0.0
    """Summed publish → confirm time of the envelopes (÷ envelopes: the mean round trip)."""
    parked: int = 0
    """Envelopes that routed nowhere and were parked (``Route.park_in``)."""


class BatchingPublisher:
    """Publishes messages through a codec and a transport, batching under load."""

    def __init__(
        self,
        transport: Transport,
        codec: Codec,
        *,
        max_items: int = 100,
        max_bytes: int = 1024 * 1024,
        max_in_flight: int = 2,
    ) -> None:
        if max_items < 1 or max_in_flight < 1:
            raise ValueError("max_items and max_in_flight must be >= 1")
        self._transport = transport
        self._codec = codec
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._max_in_flight = max_in_flight
        self._lanes: dict[tuple[Route, str], _Lane] = {}
        self._senders: set[asyncio.Task[None]] = set()
        self.stats = PublisherStats()

    async def publish(self, route: Route, message: Message) -> None:
        """Publish one message; returns once the broker confirmed it."""
        waiter = _Waiter(1)
        self._enqueue(route, message, waiter)
        await waiter.future

    async def publish_many(self, items: Sequence[tuple[Route, Message]]) -> None:
        """Publish several messages (any routes) and wait for all confirms."""
        if not items:
            return
        waiter = _Waiter(len(items))
        for route, message in items:
            self._enqueue(route, message, waiter)
        await waiter.future

    async def publish_raw(
        self,
        route: Route,
        body: bytes,
        *,
        headers: Headers | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish already-encoded bytes (dead-lettering, forwarding), unbatched."""
        await self._transport.publish(
            route.exchange,
            route.routing_key,
            body,
            headers=headers,
            mandatory=route.mandatory,
            message_id=message_id,
        )

    async def close(self, grace: float = 10.0) -> None:
        """Send what lingers, wait for envelopes in flight (bounded), then fail
        whatever is left."""
        self.flush()
        deadline = asyncio.get_running_loop().time() + grace
        while self._senders:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            # A sender that ends may start the next envelope of its lane.
            await asyncio.wait(set(self._senders), timeout=left)
        for task in list(self._senders):
            task.cancel()
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None
            while lane.pending:
                _, waiter = lane.pending.popleft()
                waiter.failed(ConnectionError("publisher closed"))

    def flush(self) -> None:
        """End every lane's linger now: what waits leaves as soon as its lane is free."""
        for lane in self._lanes.values():
            if lane.pending:
                self._linger_over(lane)

    # -- internals ---------------------------------------------------------

    def _enqueue(self, route: Route, message: Message, waiter: _Waiter) -> None:
        key = (route, message.kind)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(route, message.kind)
        lane.pending.append((message, waiter))
        self._maybe_send(lane)

    def _linger_over(self, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        lane.due = True
        self._maybe_send(lane)

    def _maybe_send(self, lane: _Lane) -> None:
        linger = lane.route.linger_s
        while lane.pending:
            if linger > 0 and not lane.due and len(lane.pending) < self._max_items:
                if lane.timer is None:
                    lane.timer = asyncio.get_running_loop().call_later(
                        linger, self._linger_over, lane
                    )
                return
            if lane.in_flight >= self._max_in_flight:
                return
            batch: list[_Pending] = []
            while lane.pending and len(batch) < self._max_items:
                item = lane.pending.popleft()
                if not item[1].future.done():
                    batch.append(item)
                # else its caller has already been told the call failed (another
                # of its envelopes did) or gave up: it publishes again if it
                # must, and this copy, sent too, could share an envelope with
                # the new one — a message twice in one envelope.
            if not batch:
                continue
            lane.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(lane, batch))
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        # Emptied: the next message starts a linger of its own.
        lane.due = False
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None

    async def _send(self, lane: _Lane, batch: list[_Pending]) -> None:
        try:
            await self._send_split(lane, batch)
        finally:
            lane.in_flight -= 1
            self._maybe_send(lane)

    async def _publish_envelope(self, lane: _Lane, body: bytes, message_id: str | None) -> None:
        route = lane.route
        try:
            await self._transport.publish(
                route.exchange,
                route.routing_key,
                body,
                headers={HEADER_KIND: lane.kind},
                message_id=message_id,
                mandatory=route.mandatory or route.park_in is not None,
            )
        except UnroutableError as error:
            if route.park_in is None:
                raise
            logger.warning("parked an unroutable %s: %s", lane.kind, error)
            self.stats.parked += 1
            await self._transport.publish(
                route.park_in,
                route.routing_key,
                body,
                headers={
                    HEADER_KIND: lane.kind,
                    HEADER_REASON: REASON_UNROUTABLE,
                    HEADER_ERROR: str(error),
                },
                message_id=message_id,
            )

    async def _send_split(self, lane: _Lane, batch: list[_Pending]) -> None:
        messages = [message for message, _ in batch]
        try:
            body = self._codec.encode(messages)
            if len(body) > self._max_bytes and len(batch) > 1:
                # Too big together: halve until each envelope fits (or is alone).
                half = len(batch) // 2
                await asyncio.gather(
                    self._send_split(lane, batch[:half]), self._send_split(lane, batch[half:])
                )
                return
            started = time.perf_counter()
            # In plaintext: the first item's id names the envelope, so a
            # sender can recognise its envelope when it is dead-lettered.
            await self._publish_envelope(lane, body, messages[0].message_id)
        except BaseException as error:
            # Every waiter learns the outcome; cancellation still propagates.
            failure = (
                error if isinstance(error, Exception) else ConnectionError("publish cancelled")
            )
            for _, waiter in batch:
                waiter.failed(failure)
            if not isinstance(error, Exception):
                raise
            return
        self.stats.confirm_seconds += time.perf_counter() - started
        self.stats.items += len(batch)
        self.stats.envelopes += 1
        for _, waiter in batch:
            waiter.confirmed()


__all__ = ["BatchingPublisher", "PublisherStats", "Route"]
