"""Where a failure goes: a failed item to its retry tier, or to the dead-letter exchange.

A failed item is re-published alone to the delay tier for its attempt
(growing delay), the ``on_retry`` hook told first; or — out of attempts, or a
permanent error (:data:`~boson_shared.runtime.consumer_spec.PERMANENT_ERRORS`) —
handed to the ``on_exhausted`` hook (e.g. a failed ``TaskResult``) and
dead-lettered with reason, error and attempt count. Bytes that can never be a
message go to the dead-letter exchange the same way, with the reason in the
headers. :class:`RetryOrDeadLetter` adds this to
:class:`~boson_shared.runtime.item_handling.ItemHandling`;
:class:`~boson_shared.runtime.consumer.ConsumeLoop` builds on it.
"""

from __future__ import annotations

import logging

from boson_shared.contract.topology import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_KIND,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
    REASON_PERMANENT_ERROR,
    REASON_RETRIES_EXHAUSTED,
)
from boson_shared.runtime.consumer_spec import PERMANENT_ERRORS, M
from boson_shared.runtime.item_handling import ItemHandling, error_text
from boson_shared.runtime.publisher import Route

# The consume loop's own logger: these lines read as the loop's, as before the split.
logger = logging.getLogger("boson_shared.runtime.consumer")


class RetryOrDeadLetter(ItemHandling[M]):
    """Retries and dead-letters for the consume loop (see the module docstring)."""

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


__all__ = ["RetryOrDeadLetter"]
