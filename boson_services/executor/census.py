"""The executor's part in a balancer's takeover census.

A balancer that becomes the active one, with tenants, asks every executor
what it holds (:class:`~boson_shared.contract.messages.HeldWorkRequest`), to
charge that work to its tenants before it admits anything. What the
executor holds is not all its predecessor dispatched there: work beyond the
executor's prefetch still waits in the node's queue, where only the broker
sees it. So the executor answers twice. At once, with what it holds (the
running work is counted without delay), and it puts a
:class:`~boson_shared.contract.messages.HeldWorkBarrier` into its own node
queue, behind everything dispatched there before the question. The queue
is FIFO: when the barrier comes out, all of that work has been delivered
here (each delivery's handler registers its task before the next one's
runs), so the second answer, ``complete``, names it too — or its result
has gone out already. The balancer waits for the complete answers.

The node queue's consumer takes both kinds; :class:`NodeQueue` routes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from boson_services.executor.handlers import ExecutorHandlers
from boson_shared.contract.messages import (
    HeldWorkBarrier,
    HeldWorkRequest,
    TaskAssigned,
)
from boson_shared.contract.topology import rk_node
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route

NodeMessage = TaskAssigned | HeldWorkBarrier
"""What a node queue carries."""


def on_held_request(handlers: ExecutorHandlers, request: HeldWorkRequest) -> list[Emit]:
    """The first answer (what is held now) and the barrier into the node queue."""
    barrier = HeldWorkBarrier(request_id=request.message_id, reply_to=request.reply_to)
    route = Route(handlers.names.work_exchange, rk_node(handlers.node_id), mandatory=True)
    return [
        handlers.held_work(request.message_id, request.reply_to, complete=False),
        Emit(route, barrier),
    ]


@dataclass(frozen=True)
class NodeQueue:
    """The node queue consumer's hooks: assignments go to the handlers as
    ever; a barrier is answered with what is held then (it cannot fail)."""

    handlers: ExecutorHandlers

    async def on_message(self, message: NodeMessage) -> Sequence[Emit]:
        if isinstance(message, HeldWorkBarrier):
            return [self.handlers.held_work(message.request_id, message.reply_to, complete=True)]
        return await self.handlers.on_assigned(message)

    async def on_exhausted(
        self, message: NodeMessage, error: BaseException, attempts: int
    ) -> Sequence[Emit]:
        assert isinstance(message, TaskAssigned)  # a barrier's handling does not fail
        return await self.handlers.on_exhausted(message, error, attempts)

    async def on_retry(
        self, message: NodeMessage, error: BaseException, attempt: int, delay_ms: int
    ) -> Sequence[Emit]:
        assert isinstance(message, TaskAssigned)
        return await self.handlers.on_retry(message, error, attempt, delay_ms)

    def max_attempts(self, message: NodeMessage) -> int:
        return self.handlers.max_attempts(message) if isinstance(message, TaskAssigned) else 1


__all__ = ["NodeMessage", "NodeQueue", "on_held_request"]
