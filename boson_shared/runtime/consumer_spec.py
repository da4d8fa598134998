"""What a service hands its consume loop for one queue, and what its handlers get and give.

A :class:`ConsumerSpec` names the queue, the kinds it takes and the handler,
with the hooks and switches that shape how the loop treats it. A handler
returns the messages it wants published (:class:`Emit`); it reads the
attempt and redelivery of the message it is handling from
:data:`delivery_attempt` and :data:`delivery_redelivered`, and raises one of
:data:`PERMANENT_ERRORS` for a failure no retry can fix. The loop itself is
:class:`~boson_shared.runtime.consumer.ConsumeLoop`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from boson_shared.contract.messages import Message
from boson_shared.errors import (
    DecodeError,
    PermanentTaskError,
    UnplaceableTaskError,
)
from boson_shared.runtime.publisher import Route

M = TypeVar("M", bound=Message)

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    DecodeError,
    PermanentTaskError,
    UnplaceableTaskError,
)
"""Handler errors that no retry can fix: dead-letter (via ``on_exhausted``) at once."""

delivery_attempt: contextvars.ContextVar[int] = contextvars.ContextVar(
    "boson_delivery_attempt", default=1
)
"""The attempt number (1 = first try) of the message a handler is handling."""

delivery_redelivered: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "boson_delivery_redelivered", default=False
)
"""Whether the broker delivered it before (a consumer or connection died holding it)."""


@dataclass(frozen=True, slots=True)
class Emit:
    """A message a handler wants published once its input is handled."""

    route: Route
    message: Message


Handler = Callable[[M], Awaitable[Sequence[Emit]]]
BatchHandler = Callable[[Sequence[M]], Awaitable[Sequence[Emit]]]
ExhaustedHook = Callable[[M, BaseException, int], Awaitable[Sequence[Emit]]]
RetryHook = Callable[[M, BaseException, int, int], Awaitable[Sequence[Emit]]]
"""``(message, error, failed attempt, delay_ms)`` → news to publish before the retry."""


@dataclass(frozen=True)
class ConsumerSpec(Generic[M]):
    """What a service consumes from one queue and how it handles it."""

    queue: str
    accepts: tuple[type[M], ...]
    handler: Handler[M]
    prefetch: int = 256
    batch_handler: BatchHandler[M] | None = None
    """Handles a whole envelope at once (e.g. batch placement); on error the
    items are retried one by one through ``handler``."""
    on_exhausted: ExhaustedHook[M] | None = None
    on_retry: RetryHook[M] | None = None
    """Called as a failed item goes to its retry tier (e.g. to tell the submitter)."""
    max_attempts: Callable[[M], int] | None = None
    """Per-message attempt limit (e.g. a task's own ``max_retries + 1``)."""
    items_in_turn: bool = False
    """Run an envelope's items one after another instead of a task each.
    For bookkeeping handlers that do not wait on anything slow (events,
    results): a task per item was a tenth of such a consumer's time. Leave it
    off where a handler waits (running a task, holding it for credit)."""
    dedup: bool = True
    """Drop items whose message id was handled before. Off only where the
    handler is idempotent and must see every copy: a result replayed for a
    task dispatched twice still has to give the balancer its credit back."""
    no_ack: bool = False
    """Consume with AMQP's no-ack: the broker takes each delivery as settled when
    it sends it, so there is no ack to send (a handler's failure or a lost
    connection loses the message; ``prefetch`` bounds nothing). Only for a
    queue whose messages the next one supersedes and whose loss costs nothing
    (the monitor's own exclusive queue of heartbeats and periodic reports)."""
    decode_in_thread_above_bytes: int | None = None
    """Decode envelopes larger than this in a worker thread (AEAD and zstd
    release the GIL), so a stream of large ones (data chunks) does not hold
    the event loop; None decodes every envelope on the loop."""


__all__ = [
    "PERMANENT_ERRORS",
    "BatchHandler",
    "ConsumerSpec",
    "Emit",
    "ExhaustedHook",
    "Handler",
    "RetryHook",
    "delivery_attempt",
    "delivery_redelivered",
]
