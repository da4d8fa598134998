"""The consume loop: decode → validate → handle → publish effects → ack.

One :class:`ConsumeLoop` per consumed queue, as a service's
:class:`~boson_shared.runtime.consumer_spec.ConsumerSpec` describes it. For
each delivery:

1. Decode the envelope. Bytes that can never be a message (any
   :class:`~boson_shared.errors.DecodeError`, or a kind this queue does not take) go
   to the dead-letter exchange at once with the reason in the headers, and the
   delivery is acked: the service keeps running, nothing is requeued forever.
2. Drop items whose message id was already handled (bounded memory), unless
   the spec turns that off for an idempotent handler.
3. Run the handler on each item (concurrently within an envelope, unless the
   spec runs them in turn). A handler returns the messages it wants
   published (:class:`~boson_shared.runtime.consumer_spec.Emit`); items that
   overlap publish theirs as each one ends, so none waits for its envelope's
   slowest sibling.
4. A failed item is re-published alone to the delay tier for its attempt
   (growing delay), or — out of attempts, or a permanent error — handed to
   the ``on_exhausted`` hook (e.g. a failed ``TaskResult``) and dead-lettered
   with reason, error and attempt count. Once every effect is confirmed, the
   delivery is acked.
5. If the broker is gone while publishing effects, the delivery is left
   unacked (nacked with requeue where possible): it comes back, and the ids
   make the repeat harmless.

Steps 2 and 3 are :class:`~boson_shared.runtime.item_handling.ItemHandling`,
which also holds the loop's state; step 4 is
:class:`~boson_shared.runtime.retry_or_dead_letter.RetryOrDeadLetter`, built
on it. :class:`ConsumeLoop` builds on both: the subscription, the deliveries in
flight, and each delivery from its decoding to its ack or its hand-back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from boson_shared.bus.abc import Delivery, Headers
from boson_shared.contract.topology import HEADER_ATTEMPT, REASON_UNEXPECTED_KIND
from boson_shared.errors import DecodeError, TransientError
from boson_shared.runtime.consumer_spec import (
    M,
    delivery_attempt,
    delivery_redelivered,
)
from boson_shared.runtime.item_handling import error_text
from boson_shared.runtime.retry_or_dead_letter import RetryOrDeadLetter

logger = logging.getLogger(__name__)

_HAND_BACK_PAUSE_S = 0.5

CANCEL_WAIT_S = 5.0
"""How long a drain waits for the handlers it cancelled to end."""


class ConsumeLoop(RetryOrDeadLetter[M]):
    """Consumes one queue for a service (see the module docstring)."""

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

    async def drain(self, grace: float, *, cancel_wait: float = CANCEL_WAIT_S) -> None:
        """Wait up to ``grace`` seconds for in-flight work, then hand the rest
        back: cancelled, each has ``cancel_wait`` seconds to end (its delivery
        nacked); one still running then is left behind, with a log line."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=cancel_wait)
        if self._in_flight:
            logger.error(
                "%s: %d handler(s) still running %.1fs after their cancel; "
                "the drain goes on without them",
                self.spec.queue,
                len(self._in_flight),
                cancel_wait,
            )

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


__all__ = ["CANCEL_WAIT_S", "ConsumeLoop"]
