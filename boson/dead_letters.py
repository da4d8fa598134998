"""A client's watch on the dead-letter exchange: which of its envelopes died, and why.

A service that cannot decrypt an envelope (a key it does not hold, a wrong
key) cannot read its ``reply_to`` either, so it cannot send the client a
failed result. What it can do is dead-letter the envelope with its plaintext
message id (the first item's id) and the reason in a header. The client binds
its own short-lived queue to the dead-letter exchange (a fanout), recognises
its envelopes by message id, and fails their tasks with that reason instead
of waiting for results that will never come. The queue is exclusive to the
client's connection: it follows the connection to whichever broker node it
fails over to (the dead letters themselves stay in the quorum dead-letter
queue). Its name carries an instance suffix besides the client id, since
two clients under one id may be connected at once (one under a new key
while the other still waits for results under the old).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from boson_shared.bus.abc import Delivery, Subscription, Transport
from boson_shared.contract.messages import new_id
from boson_shared.contract.topology import (
    HEADER_ERROR,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
    BindingSpec,
    Names,
    QueueSpec,
    Topology,
)

HANDLED_ELSEWHERE = frozenset({"permanent-error", "retries-exhausted"})
"""Reasons whose task already got a failed result from the service that gave up."""

_EXPLANATIONS = {
    "unknown-key": (
        "the services hold no key this client encrypted with: give the client "
        "the cluster's BOSON_KEYS"
    ),
    "authentication": (
        "the services could not authenticate it (a different key under the same "
        "id?): give the client the cluster's BOSON_KEYS"
    ),
    "unsupported-version": "the services do not read this client's wire version",
    "unknown-kind": "the services do not know this message kind (versions differ?)",
    "schema": "the services refused its fields (versions differ?)",
}

DeadLetterCallback = Callable[[str, bytes, str], Awaitable[None]]
"""``(message_id, body, explanation)`` of a dead-lettered envelope."""


def explain(reason: str, error: str, source_queue: str) -> str:
    """What the user reads for a dead-lettered task."""
    known = _EXPLANATIONS.get(reason)
    if known is not None:
        return f"dead-lettered from {source_queue} ({reason}): {known}"
    detail = f": {error}" if error else ""
    return f"dead-lettered from {source_queue} ({reason}){detail}"


def watch_queue(names: Names, client_id: str, instance: str) -> str:
    return names.subscriber_queue("client-dead", f"{client_id}.{instance}")


class DeadLetterWatch:
    """Consumes a copy of every dead letter of the namespace; reports the ones asked about."""

    def __init__(
        self,
        transport: Transport,
        names: Names,
        client_id: str,
        on_dead: DeadLetterCallback,
    ) -> None:
        self._transport = transport
        self.queue = watch_queue(names, client_id, new_id()[:8])
        self._topology = Topology(
            queues=(QueueSpec(self.queue, queue_type="classic", durable=False, exclusive=True),),
            bindings=(BindingSpec(self.queue, names.dead_exchange, "#"),),
        )
        self._on_dead = on_dead
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        await self._transport.declare(self._topology)
        self._subscription = await self._transport.consume(
            self.queue, self._on_delivery, prefetch=100
        )

    async def _on_delivery(self, delivery: Delivery) -> None:
        try:
            reason = str(delivery.headers.get(HEADER_REASON) or "unknown")
            message_id = delivery.message_id
            if message_id is not None and reason not in HANDLED_ELSEWHERE:
                error = str(delivery.headers.get(HEADER_ERROR) or "")
                source = str(delivery.headers.get(HEADER_SOURCE_QUEUE) or "a service")
                await self._on_dead(message_id, delivery.body, explain(reason, error, source))
        finally:
            await delivery.ack()

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None


__all__ = ["HANDLED_ELSEWHERE", "DeadLetterWatch", "explain", "watch_queue"]
