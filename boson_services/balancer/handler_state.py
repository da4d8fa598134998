"""What the balancer's handlers keep between messages, and what they act through.

:class:`HandlerState` is the bottom layer of the balancer's handlers: the
dispatcher, the admission gate and the publisher they act through, the
task ids whose result went by (and the latest results, for a dead node's
leftovers), the ids a cancel named, and the counts the service reports.
The layers above it:
:class:`~boson_services.balancer.cancelling.Cancelling`,
:class:`~boson_services.balancer.dispatching.Dispatching`,
:class:`~boson_services.balancer.taking_over.TakingOver` and
:class:`~boson_services.balancer.handlers.BalancerHandlers`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.messages import Message
from boson_shared.contract.topology import RK_RECORD_EVENT, Names
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import RecentResults

RESULTS_KEPT = 1024
"""Results kept to send again for a dead node's leftovers (see
:meth:`~boson_services.balancer.handlers.BalancerHandlers.on_orphan`); an
older leftover runs again. Each result holds at most an executor's inline output."""

NodesChanged = Callable[[list[str]], Awaitable[None]]
Publish = Callable[[Route, Message], Awaitable[None]]


class HandlerState:
    """The handlers' memory of tasks and counts, and their dispatcher, gate and publisher."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        names: Names,
        publish: Publish,
        *,
        park_after_s: float,
        on_nodes_down: NodesChanged | None = None,
        finished_capacity: int = 100_000,
        record: bool = False,
        record_linger_s: float = 0.0,
        gate: AdmissionGate | None = None,
        instance_id: str = "balancer",
    ) -> None:
        self.dispatcher = dispatcher
        self.gate = gate
        self.instance_id = instance_id
        """Admission across tenants (None: no tenants file, no gate)."""
        self.names = names
        self.publish = publish
        self.park_after_s = park_after_s
        self.on_nodes_down = on_nodes_down
        self.parked_total = 0
        self.placed_seen = False
        """A placement reached this instance: it is (or was) the active consumer."""
        self.recovered_total = 0
        self.finished = SeenIds(finished_capacity)
        """Task ids whose result went by (bounded), to tell leftovers from work."""
        self.skipped_finished = 0
        self.kept_results = RecentResults(RESULTS_KEPT)
        """The latest results that went by, for a leftover whose result may
        not have reached its client (see ``on_orphan``)."""
        self.replayed_total = 0
        self.cancelled = SeenIds(finished_capacity)
        """Task ids a cancel named (bounded): such a task is never dispatched."""
        self.cancelled_total = 0
        self.record = record
        """Report assignments to the task record."""
        self.record_route = Route(names.events_exchange, RK_RECORD_EVENT, linger_s=record_linger_s)


__all__ = ["RESULTS_KEPT", "HandlerState", "NodesChanged", "Publish"]
