"""Handling a delivery's items: dedup, the handlers, their effects published with confirms.

:class:`ItemHandling` holds the consume loop's state (its spec, transport,
codec, publisher, the ids it has seen and its :class:`ConsumerStats`) and
handles the items of a decoded envelope:

- Items whose message id was already handled are dropped (bounded memory),
  unless the spec turns that off for an idempotent handler; a copy of an id
  another delivery is still handling waits for how that ends.
- The handler runs on each item (concurrently within an envelope, unless the
  spec runs them in turn, or a batch handler takes the envelope whole). A
  handler returns the messages it wants published (:class:`Emit`); items
  that overlap publish theirs as each one ends, so none waits for its
  envelope's slowest sibling. Every effect is confirmed before the loop acks.

The items that failed go on to
:class:`~boson_shared.runtime.retry_or_dead_letter.RetryOrDeadLetter`;
:class:`~boson_shared.runtime.consumer.ConsumeLoop` builds on both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, cast

from boson_shared.bus.abc import Subscription, Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import Message
from boson_shared.contract.topology import Names
from boson_shared.errors import TransientError
from boson_shared.logs import message_id_var, task_id_var
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit, M
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import BatchingPublisher

# The consume loop's own logger: these lines read as the loop's, as before the split.
logger = logging.getLogger("boson_shared.runtime.consumer")

_MAX_ERROR_TEXT = 1000


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


class ItemHandling(Generic[M]):
    """The consume loop's state, and how it handles a delivery's items (see the module doc)."""

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


__all__ = ["ConsumerStats", "ItemHandling", "error_text"]
