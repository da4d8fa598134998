"""Where a task's result goes: the events exchange, routed to the client that submitted it.

Every service that ends a task (the executor with its outcome, the scheduler
and the balancer with a failure, a simulated node) publishes the result the
same way, so a client's result queue (bound to ``result.<client id>``) gets
it whichever service spoke.
"""

from __future__ import annotations

from collections import OrderedDict

from boson_shared.contract.messages import TaskResult
from boson_shared.contract.topology import Names, rk_result
from boson_shared.runtime.consumer_spec import Emit
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


class RecentResults:
    """The latest ``capacity`` results seen, by task id, to publish again.

    A result that went by one queue has not necessarily reached its client:
    the events exchange fans it out to several queues, and a publish the
    broker nacks (one queue refused it: a quorum queue electing a leader)
    or whose connection dropped may have reached some of them and not the
    others. Whoever acts on having seen it keeps it here to send it again.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._results: OrderedDict[str, TaskResult] = OrderedDict()

    def add(self, result: TaskResult) -> None:
        """Keep ``result`` (the newest now); the oldest beyond capacity is forgotten."""
        self._results[result.task_id] = result
        self._results.move_to_end(result.task_id)
        if len(self._results) > self._capacity:
            self._results.popitem(last=False)

    def get(self, task_id: str) -> TaskResult | None:
        return self._results.get(task_id)

    def __len__(self) -> int:
        return len(self._results)


__all__ = ["RecentResults", "result_emit", "result_route"]
