"""Checks on what a service emits when it ends a task."""

from __future__ import annotations

from boson_shared.contract.messages import TaskFailure, TaskResult
from boson_shared.contract.topology import Names, rk_result
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route


def failure_sent(emit: Emit, names: Names, client_id: str, attempts: int) -> TaskFailure:
    """``emit`` is a failed result after ``attempts``, routed to ``client_id``; its failure.

    The route is spelt out here rather than taken from the services' helper,
    so a wrong route in that helper fails the test.
    """
    expected = Route(names.events_exchange, rk_result(client_id), park_in=names.dead_exchange)
    assert emit.route == expected, emit.route
    result = emit.message
    assert isinstance(result, TaskResult), type(result)
    assert (result.status, result.attempts) == ("failed", attempts), (result.status, attempts)
    assert result.error is not None
    return result.error


__all__ = ["failure_sent"]
