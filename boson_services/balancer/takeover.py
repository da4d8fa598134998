"""What a balancer that becomes the active one learns before it admits.

With tenants, admission charges each tenant for the work it runs. A balancer
that takes over (the active one died, or restarted) has charged nothing:
the work its predecessor admitted still runs on the executors. Before its
first admission pass it therefore asks every executor what it holds (a
:class:`~boson_shared.contract.messages.HeldWorkRequest` on the events
exchange) and charges each task an answer names against its tenant
(:meth:`AdmissionGate.adopt`); those tasks' results then free their quota
as any admitted task's do. Each executor answers twice: at once, and when a
barrier it put into its own node queue comes out, by when the work that
queued there beyond its prefetch has reached it
(:mod:`boson_services.executor.census`); only that ``complete`` answer ends
the wait for it. Admission waits for the complete answers of the nodes the
balancer knows alive, or :data:`CENSUS_WAIT_S` at most (a node that does
not answer in time has its work counted when its answer comes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CENSUS_WAIT_S = 3.0
"""How long admission waits for the executors' answers at most: beyond
the round trip, a balancer that has seen no snapshot yet learns the nodes
from the first one (published every second)."""


@dataclass
class Census:
    """One takeover's question to the executors, and who has answered it."""

    request_id: str
    deadline: float
    awaiting: set[str] = field(default_factory=set)
    """Nodes known alive that have not answered (empty at the start: no node
    known yet, so only the deadline ends the wait)."""
    answered: set[str] = field(default_factory=set)
    ended: bool = False

    def answer(self, node_id: str) -> None:
        self.answered.add(node_id)
        self.awaiting.discard(node_id)

    def done(self, now: float) -> bool:
        """Whether admission may start: every known node answered, or time is up."""
        if not self.ended and ((self.answered and not self.awaiting) or now >= self.deadline):
            self.ended = True
        return self.ended


__all__ = ["CENSUS_WAIT_S", "Census"]
