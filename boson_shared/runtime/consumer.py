"""The consume loop: decode → validate → handle → publish effects → ack.

One :class:`ConsumeLoop` per consumed queue. For each delivery:

1. Decode the envelope. Bytes that can never be a message (any
   :class:`~boson_shared.errors.DecodeError`, or a kind this queue does not take) go
   to the dead-letter exchange at once with the reason in the headers, and the
   delivery is acked: the service keeps running, nothing is requeued forever.
2. Drop items whose message id was already handled (bounded memory), unless
   the spec turns that off for an idempotent handler.
3. Run the handler on each item (concurrently within an envelope, unless the
   spec runs them in turn). A handler returns the messages it wants
   published (:class:`Emit`); items that overlap publish theirs as each one
   ends, so none waits for its envelope's slowest sibling.
4. A failed item is re-published alone to the delay tier for its attempt
   (growing delay), or — out of attempts, or a permanent error — handed to
   the ``on_exhausted`` hook (e.g. a failed ``TaskResult``) and dead-lettered
   with reason, error and attempt count. Once every effect is confirmed, the
   delivery is acked.
5. If the broker is gone while publishing effects, the delivery is left
   unacked (nacked with requeue where possible): it comes back, and the ids
   make the repeat harmless.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from boson_shared.bus.abc import Delivery, Headers, Subscription, Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import Message
from boson_shared.contract.topology import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_KIND,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
    REASON_PERMANENT_ERROR,
    REASON_RETRIES_EXHAUSTED,
    REASON_UNEXPECTED_KIND,
    Names,
)
from boson_shared.errors import (
    DecodeError,
    PermanentTaskError,
    TransientError,
    UnplaceableTaskError,
)
from boson_shared.logs import message_id_var, task_id_var
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import BatchingPublisher, Route

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    DecodeError,
    PermanentTaskError,
    UnplaceableTaskError,
)
"""Handler errors that no retry can fix: dead-letter (via ``on_exhausted``) at once."""

_MAX_ERROR_TEXT = 1000
_HAND_BACK_PAUSE_S = 0.5

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


@dataclass
class ConsumerStats:
    """What a loop did, for metrics and tests."""

    deliveries: int = 0
    handled: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    handed_back: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


def _failures(
    messages: Sequence[M], outcomes: Sequence[Sequence[Emit] | BaseException]
) -> list[tuple[M, BaseException]]:
    """The items whose handler failed; a transient error hands the whole delivery back."""
    failures: list[tuple[M, BaseException]] = []
    for message, outcome in zip(messages, outcomes, strict=True):
        if isinstance(outcome, TransientError):
            # The broker (or another service) is away, not the message at
            # fault: hand the whole delivery back, no attempt counted.
            raise outcome
        if isinstance(outcome, BaseException):
            failures.append((message, outcome))
    return failures


def error_text(error: BaseException) -> str:
    """A one-line description of an error, bounded in length."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text[:_MAX_ERROR_TEXT]


class ConsumeLoop(Generic[M]):
    """Consumes one queue for a service (see the module docstring)."""

    def __init__(
        self,
        spec: ConsumerSpec[M],
        *,
        transport: Transport,
        codec: Codec,
        publisher: BatchingPublisher,
        names: Names,
        seen: SeenIds,
    ) -> None:
        self.spec = spec
        self._transport = transport
        self._codec = codec
        self._publisher = publisher
        self._names = names
        self._seen = seen
        self._subscription: Subscription | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.stats = ConsumerStats()

    async def start(self) -> None:
        self._subscription = await self._transport.consume(
            self.spec.queue, self._on_delivery, prefetch=self.spec.prefetch, no_ack=self.spec.no_ack
        )

    async def stop(self) -> None:
        """Stop taking new deliveries; those in flight carry on."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            try:
                await subscription.cancel()
            except Exception as error:  # the connection may already be gone
                logger.debug("cancelling %s: %s", self.spec.queue, error)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for in-flight work, then hand the rest back."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=5.0)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def _on_delivery(self, delivery: Delivery) -> None:
        # Both transports call this in a task of its own per delivery
        # (boson_shared.bus.runner), so one slow handler does not hold up the rest
        # of the prefetch window; a second task per delivery would only cost.
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self._process(delivery)
        finally:
            self._in_flight.discard(task)

    async def _process(self, delivery: Delivery) -> None:
        self.stats.deliveries += 1
        try:
            await self._process_unguarded(delivery)
        except asyncio.CancelledError:
            await _settle_quietly(delivery, requeue=True)
            raise
        except Exception as error:
            # The broker went away mid-way (or a bug): leave the message for
            # redelivery rather than lose it; ids make the repeat harmless.
            self.stats.handed_back += 1
            logger.warning("delivery from %s handed back: %s", self.spec.queue, error_text(error))
            if isinstance(error, TransientError):
                # Not at once: a broker that refuses now would bounce it straight back.
                await asyncio.sleep(_HAND_BACK_PAUSE_S)
            await _settle_quietly(delivery, requeue=True)

    async def _process_unguarded(self, delivery: Delivery) -> None:
        threshold = self.spec.decode_in_thread_above_bytes
        try:
            if threshold is not None and len(delivery.body) > threshold:
                messages = await asyncio.to_thread(self._codec.decode, delivery.body)
            else:
                messages = self._codec.decode(delivery.body)
        except DecodeError as error:
            await self._dead_letter(
                delivery.body, error.reason, error, None, None, delivery.message_id
            )
            await delivery.ack()
            return
        unexpected = [m.kind for m in messages if not isinstance(m, self.spec.accepts)]
        if unexpected:
            wrong_kind = TypeError(f"queue {self.spec.queue} does not take {unexpected[0]!r}")
            await self._dead_letter(
                delivery.body,
                REASON_UNEXPECTED_KIND,
                wrong_kind,
                None,
                unexpected[0],
                delivery.message_id,
            )
            await delivery.ack()
            return
        attempt = _attempt(delivery.headers)
        delivery_attempt.set(attempt)
        delivery_redelivered.set(delivery.redelivered)
        dedup = self.spec.dedup
        # Every item is an M: checked by isinstance above.
        fresh = await self._claim_fresh(messages) if dedup else cast(list[M], list(messages))
        failed: set[str] = set()
        try:
            failures = await self._handle(fresh)
            failed = {message.message_id for message, _ in failures}
            for message, failure in failures:
                await self._retry_or_give_up(message, failure, attempt)
        except BaseException:
            for message in fresh if dedup else ():
                self._seen.finish(message.message_id, handled=False)
            raise
        for message in fresh if dedup else ():
            # A failed item went to its retry tier: that copy must be handled.
            self._seen.finish(message.message_id, handled=message.message_id not in failed)
        self.stats.handled += len(fresh) - len(failures)
        await delivery.ack()

    async def _claim_fresh(self, messages: Sequence[Message]) -> list[M]:
        """The items never handled, each now marked as being handled by this delivery.

        A copy of an id that another delivery is handling (a redelivery while
        the original is still in its handler) waits for how that ends: a
        failed original leaves the copy to be handled. The wait holds no id:
        only once nothing here is being handled elsewhere are the fresh ids
        claimed, in one step without an await. So two deliveries sharing ids
        never wait on each other, and an id repeated within one envelope (a
        publisher that queued a replayed message behind its first copy) is a
        repeat of its first copy, not a wait on itself: either would hold the
        delivery unacked for good.
        """
        while True:
            elsewhere = [
                outcome
                for message in messages
                if (outcome := self._seen.pending(message.message_id)) is not None
            ]
            if not elsewhere:
                break
            await asyncio.wait(elsewhere)
        fresh: list[M] = []
        claimed: set[str] = set()
        for message in messages:
            if message.message_id in claimed or message.message_id in self._seen:
                self.stats.duplicates += 1
                continue
            claimed.add(message.message_id)
            self._seen.begin(message.message_id)
            fresh.append(cast(M, message))
        return fresh

    async def _handle(self, messages: Sequence[M]) -> list[tuple[M, BaseException]]:
        """Handle the items and publish their effects (confirmed); the items that failed."""
        if not messages:
            return []
        if self.spec.batch_handler is not None and len(messages) > 1:
            try:
                emits = await self.spec.batch_handler(messages)
            except Exception as error:
                logger.warning("batch handler failed, retrying items singly: %s", error_text(error))
            else:
                await self._publish(emits)
                return []
        if len(messages) == 1 or self.spec.items_in_turn:
            # No task for a lone item, or where items need not overlap; their
            # effects leave together.
            outcomes = [await self._handle_one(message) for message in messages]
            failures = _failures(messages, outcomes)
            await self._publish(
                [e for o in outcomes if not isinstance(o, BaseException) for e in o]
            )
            return failures
        # Items that overlap publish their effects as each one ends: a task
        # dispatched, or a result, never waits for its envelope's slowest
        # sibling (a balancer holding the rest for credit, an executor running
        # a long task). The delivery is still acked only after all of them.
        published = await asyncio.gather(*(self._handle_and_publish(m) for m in messages))
        failures = _failures(messages, [outcome for outcome, _ in published])
        unpublished = next((error for _, error in published if error is not None), None)
        if unpublished is not None:
            raise unpublished
        return failures

    async def _handle_and_publish(
        self, message: M
    ) -> tuple[Sequence[Emit] | BaseException, Exception | None]:
        """One item's outcome, its effects published; and the publishing error, if any."""
        outcome = await self._handle_one(message)
        if isinstance(outcome, BaseException) or not outcome:
            return outcome, None
        try:
            await self._publish(outcome)
        except Exception as error:
            return outcome, error
        return outcome, None

    async def _publish(self, emits: Sequence[Emit]) -> None:
        await self._publisher.publish_many([(e.route, e.message) for e in emits])

    async def _handle_one(self, message: M) -> Sequence[Emit] | BaseException:
        message_id_var.set(message.message_id)
        # Not getattr(message, "task_id", None): on a model without the field
        # that goes through pydantic's __getattr__ and an AttributeError on
        # every item of the hot path.
        task_id_var.set(message.__dict__.get("task_id"))
        try:
            return await self.spec.handler(message)
        except Exception as error:
            logger.info("handler failed: %s", error_text(error))
            return error

    async def _retry_or_give_up(self, message: M, error: BaseException, attempt: int) -> None:
        limit = self._names.retry.max_attempts
        if self.spec.max_attempts is not None:
            limit = self.spec.max_attempts(message)
        if not isinstance(error, PERMANENT_ERRORS) and attempt < limit:
            delay = self._names.retry.delay_ms(attempt)
            if self.spec.on_retry is not None:
                await self._publish(await self.spec.on_retry(message, error, attempt, delay))
            # Into the namespace's tier for this delay, under this queue's
            # name: that is the key it comes back to this queue with.
            await self._publisher.publish_raw(
                Route(self._names.retry_tier(delay), self.spec.queue),
                self._codec.encode([message]),
                headers={
                    HEADER_ATTEMPT: attempt + 1,
                    HEADER_ERROR: error_text(error),
                    HEADER_KIND: message.kind,
                    HEADER_SOURCE_QUEUE: self.spec.queue,
                },
            )
            self.stats.retried += 1
            return
        reported = False
        if self.spec.on_exhausted is not None:
            emits = await self.spec.on_exhausted(message, error, attempt)
            await self._publisher.publish_many([(e.route, e.message) for e in emits])
            reported = bool(emits)
        reason = (
            REASON_PERMANENT_ERROR
            if isinstance(error, PERMANENT_ERRORS)
            else REASON_RETRIES_EXHAUSTED
        )
        await self._dead_letter(
            self._codec.encode([message]),
            reason,
            error,
            attempt,
            message.kind,
            message.message_id,
            quiet=reported,
        )

    async def _dead_letter(
        self,
        body: bytes,
        reason: str,
        error: BaseException,
        attempt: int | None,
        kind: str | None,
        message_id: str | None,
        *,
        quiet: bool = False,
    ) -> None:
        """Publish ``body`` to the dead-letter exchange; its message id stays in plaintext."""
        headers: dict[str, str | int] = {
            HEADER_REASON: reason,
            HEADER_ERROR: error_text(error),
            HEADER_SOURCE_QUEUE: self.spec.queue,
        }
        if attempt is not None:
            headers[HEADER_ATTEMPT] = attempt
        kind = kind or self._codec.peek_kind(body)
        if kind:
            headers[HEADER_KIND] = kind
        await self._publisher.publish_raw(
            Route(self._names.dead_exchange, self.spec.queue),
            body,
            headers=headers,
            message_id=message_id,
        )
        self.stats.dead_lettered += 1
        self.stats.dead_letter_reasons[reason] = self.stats.dead_letter_reasons.get(reason, 0) + 1
        # A failure already reported to its owner (a failed result) is the
        # owner's news, not the operator's: no warning for it.
        logger.log(
            logging.INFO if quiet else logging.WARNING,
            "dead-lettered from %s (%s): %s",
            self.spec.queue,
            reason,
            error_text(error),
        )


def _attempt(headers: Headers) -> int:
    value = headers.get(HEADER_ATTEMPT)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return 1


async def _settle_quietly(delivery: Delivery, *, requeue: bool) -> None:
    if delivery.settled:
        return
    try:
        await delivery.nack(requeue=requeue)
    except Exception as error:  # channel gone: the broker requeues it anyway
        logger.debug("nack failed: %s", error)


__all__ = [
    "PERMANENT_ERRORS",
    "BatchHandler",
    "ConsumeLoop",
    "ConsumerSpec",
    "ConsumerStats",
    "Emit",
    "ExhaustedHook",
    "Handler",
    "RetryHook",
    "delivery_attempt",
    "error_text",
]
