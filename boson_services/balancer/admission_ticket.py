"""One task's ticket in the balancer's admission across tenants, and the
error of a task whose tenant is unknown.

A :class:`Ticket` follows a task from its first placement to its result:
its place in its tenant's line (kept across preemptions), the future its
handler waits on, and its charge against its tenant while admitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from boson_shared.scheduling.admission import Running

StartHold = Callable[["asyncio.Future[str]"], "asyncio.Future[str]"]
"""Hands the task to the dispatcher, which resolves the future it is given
(and returns) with the node the task goes to."""


class UnknownTenantError(Exception):
    """A task names a tenant the tenants file does not declare."""

    def __init__(self, tenant: str, known: tuple[str, ...]) -> None:
        shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        super().__init__(f"tenant {tenant!r} is not one of: {shown}")
        self.tenant = tenant


class Ticket:
    """One task's place in admission, from its first placement to its result.

    A class with its own ``__init__`` rather than a dataclass: compiled
    (boson_shared/runtime/compiled.py), a dataclass's generated ``__init__``
    still runs as interpreted Python, and one is made for every task."""

    def __init__(
        self,
        task_id: str,
        tenant: str,
        demand: np.ndarray,
        models: frozenset[str] | None,
        priority: int,
        since: float,
        order: float,
        start: StartHold,
        *,
        run: Running | None = None,
        node: str | None = None,
        preempted: int = 0,
    ) -> None:
        self.task_id = task_id
        self.tenant = tenant
        self.demand = demand
        self.models = models
        self.priority = priority
        self.since = since
        """When it first joined its line (kept across preemptions: aging)."""
        self.order = order
        """Its place in the order tasks first joined (kept across preemptions)."""
        self.start = start
        self.turn: asyncio.Future[str] | None = None
        """What its handler waits on: pending while it waits in its line, then
        (admitted) the dispatcher's until a node takes it; None while it is away
        (preempted, until its executor hands it back)."""
        self.queued = False
        """In its tenant's line (not admitted, not away, not gone)."""
        self.run = run
        """Its charge against its tenant while admitted."""
        self.waiting_since = 0.0
        """When its current wait began (parking: no delivery outlives its limit)."""
        self.preempted = preempted
        self.node = node
        """The node an adopted task runs on (admitted by an earlier balancer:
        this one's dispatcher never sent it anywhere)."""
        self.told_preempted = False
        """Preempted while the dispatcher held it: its handler's wait failed and
        it has not come back to
        :meth:`~boson_services.balancer.ticket_book.TicketBook.enter` yet. When
        it does, it waits on the ticket's turn as it then is — pending in its
        line, handed to the dispatcher by a pass that admitted it again
        meanwhile, or failed by a cancel meanwhile (which keeps the ticket for
        it)."""

    @property
    def waiting(self) -> bool:
        """In its line, and its handler still waits (its future not failed
        or cancelled)."""
        return self.queued and self.turn is not None and not self.turn.done()


__all__ = ["StartHold", "Ticket", "UnknownTenantError"]
