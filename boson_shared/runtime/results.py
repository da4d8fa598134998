"""Where a task's result goes: the events exchange, routed to the client that submitted it.

Every service that ends a task (the executor with its outcome, the scheduler
and the balancer with a failure, a simulated node) publishes the result the
same way, so a client's result queue (bound to ``result.<client id>``) gets
it whichever service spoke.
"""

from __future__ import annotations

from boson_shared.contract.messages import TaskResult
from boson_shared.contract.topology import Names, rk_result
from boson_shared.runtime.consumer import Emit
from boson_shared.runtime.publisher import Route


def result_route(names: Names, reply_to: str) -> Route:
    """The route of results for the client ``reply_to``.

    A reply: if the client's queue is gone, the result is parked in the dead
    letters (reason ``unroutable``) instead of being dropped.
    """
    return Route.reply(names, rk_result(reply_to))


def result_emit(names: Names, result: TaskResult) -> Emit:
    """Publish ``result`` to the client that submitted its task."""
    return Emit(result_route(names, result.reply_to), result)


__all__ = ["result_emit", "result_route"]
