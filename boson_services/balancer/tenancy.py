"""Admission across tenants in the live balancer: who goes next, and preemption.

The balancer is the single active consumer of placed work and sees the whole
pool, so it holds the :class:`~boson_shared.scheduling.admission.Admission`
(docs/scheduling.md#tenants) behind an :class:`AdmissionGate`: the tickets,
their lines and the admission passes are
:class:`~boson_services.balancer.ticket_book.TicketBook`'s (a ticket itself:
:mod:`~boson_services.balancer.admission_ticket`); the gate adds preemption.

Preemption: :meth:`AdmissionGate.reclaim` asks admission for victims once a
claim has waited the grace period. The gate is admission's
:class:`~boson_shared.scheduling.admission.NodeRoom`: it tells what each node
has free (the dispatcher's view of it) and which node each admitted task was
dispatched to, so victims are chosen node by node and work is stopped only
on a node where the room it frees then takes the claimant's next task. It
is a :class:`~boson_shared.scheduling.admission.DeviceRoom` too: GPU room
is per device (each node's devices with their models, and the devices each
task holds), so a claimant limited to some GPU models (``gpu_model``) has
work stopped only where the room freed is on devices of those models. A
victim the dispatcher still holds goes
straight back to its line (its handler waits again: on the ticket's turn as
it is when the handler comes back, so a pass that admitted the task again
meanwhile holds it once, and a cancel meanwhile ends it). A dispatched one is
stopped by its executor (a ``preempted`` :class:`CancelTask` naming its
node), which hands the task back to the balancer's placed queue instead of
reporting a result; it rejoins its tenant's line at the front when it
arrives. The submitter sees only the final run's result.

Without a tenants file there is no gate at all: the balancer dispatches as
it always has, at no cost.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from boson_services.balancer.ticket_book import TicketBook
from boson_shared.scheduling.admission import Devices, Running
from boson_shared.scheduling.devices import mask_of

AWAY_LIMIT_S = 10.0
"""How long preempted tasks on their way back hold up the next reclaim: until
they are back (or finished) their room is not free yet, and a reclaim in the
meantime would stop more work for the same claim. Past this (an executor
that died, a hand-back lost) reclaim goes on."""

HELD: Hashable = object()
"""Where reclaim sees admitted work the dispatcher still holds: a node of its
own with nothing free. Such work takes the next room freed on a node it
fits, ahead of the claimant; stopping it gives that room to the claimant
instead (and costs no work: it goes straight back to its line)."""


@dataclass(frozen=True)
class Preemption:
    """Tasks to stop on one node."""

    node_id: str
    task_ids: tuple[str, ...]


class AdmissionGate(TicketBook):
    """The tickets of every task between its placement and its result, and
    preemption (the tickets' way in and out, and the passes:
    :class:`~boson_services.balancer.ticket_book.TicketBook`)."""

    # -- preempting ------------------------------------------------------------------

    def reclaim(self) -> list[Preemption]:
        """Take borrowed capacity back for claims past their grace period.

        Victims still held by the dispatcher wait in their lines again at
        once; dispatched ones are returned, grouped by node, for the caller
        to stop (a ``preempted`` cancel): they are away until their
        executor hands them back.
        """
        now = self.clock()
        if self.census is not None and not self.census.done(now):
            return []  # usage is not known yet: nothing to reclaim on its strength
        due = self.admission.next_reclaim()
        if due is None or due > now or self._victims_on_their_way(now):
            return []
        by_node: dict[str, list[str]] = {}
        for victim in self.admission.reclaim(now, self):
            task_id = str(victim.run.key)
            ticket = self.tickets.get(task_id)
            if ticket is None or ticket.run is not victim.run:
                # Not ours to stop (cannot happen): keep admission's lines true.
                self.admission.withdraw(task_id, self.admission.names[victim.run.tenant])
                continue
            ticket.run = None
            ticket.preempted += 1
            self.preempted[ticket.tenant] += 1
            node_id = self.dispatcher.where.get(task_id) or ticket.node
            if self.dispatcher.preempt(task_id):
                # Still held here: back in its line as it is; its handler
                # wakes to the failed wait and comes back to enter.
                ticket.told_preempted = True
                self._wait(ticket, now)
            elif node_id is not None:
                self.admission.withdraw(task_id, ticket.tenant)
                ticket.turn = None  # away until its executor hands it back
                ticket.queued = False
                self._away[task_id] = now
                by_node.setdefault(node_id, []).append(task_id)
            else:
                # Neither held nor dispatched: its handler is between the two
                # (publishing its assignment). Out of line; it runs as it is,
                # uncharged, and its result ends its ticket.
                self.admission.withdraw(task_id, ticket.tenant)
                ticket.turn = None
                ticket.queued = False
        if by_node:
            self.admit()  # what the dispatcher freed is offered at once
        return [Preemption(node_id, tuple(ids)) for node_id, ids in by_node.items()]

    # -- what reclaim sees of the nodes (admission's NodeRoom) -------------------------

    def free(self, node: Hashable) -> Sequence[float]:
        """What ``node`` has free in the dispatcher's view (its last snapshot,
        plus what was dispatched there since, less what came back); nothing
        for a node that takes no work, nor for :data:`HELD`."""
        if node is HELD:
            return (0.0, 0.0, 0.0)
        view = self.dispatcher.nodes.get(str(node))
        if view is None or not view.takes_work:
            return (0.0, 0.0, 0.0)
        return tuple(float(x) for x in np.maximum(view.capacity - view.allocated, 0.0))

    def devices(self, node: Hashable) -> Devices | None:
        """(milli free, milli capacity, model) of each GPU device of ``node`` in
        the dispatcher's view; none for a node that takes no work. :data:`HELD`
        has no devices: its GPU room is its total, as :meth:`free` tells."""
        if node is HELD:
            return None
        view = self.dispatcher.nodes.get(str(node))
        if view is None or not view.takes_work:
            return [], [], []
        book = view.gpus
        free = [c - h for c, h in zip(book.cap, book.held, strict=True)]
        return free, list(book.cap), list(book.models)

    def devices_held(self, run: Running, position: int) -> int:
        """The devices (a mask) a dispatched task holds on its node (0: none, or held)."""
        return mask_of(self.dispatcher.devices_of(str(run.key)))

    def nodes(self, run: Running) -> Sequence[Hashable]:
        """The node an admitted task was dispatched to; :data:`HELD` while
        the dispatcher still holds it."""
        node_id = self.dispatcher.where.get(str(run.key))
        if node_id is None:
            ticket = self.tickets.get(str(run.key))
            node_id = ticket.node if ticket is not None else None
        return (HELD,) if node_id is None else (node_id,)

    def _victims_on_their_way(self, now: float) -> bool:
        """Whether tasks preempted lately are still away (see :data:`AWAY_LIMIT_S`)."""
        for task_id, at in list(self._away.items()):
            ticket = self.tickets.get(task_id)
            back = ticket is None or ticket.run is not None or ticket.waiting
            if back or now - at > AWAY_LIMIT_S:
                del self._away[task_id]
        return bool(self._away)


__all__ = [
    "AWAY_LIMIT_S",
    "HELD",
    "AdmissionGate",
    "Preemption",
]
