"""The admission gate's tickets: a task's way in, the admission passes, its way out.

With a tenants file, every placed task takes a
:class:`~boson_services.balancer.admission_ticket.Ticket` here before the
dispatcher holds it: it joins its tenant's line, and an admission pass —
after new tasks and results (one for all that arrive in one turn of the
event loop), every snapshot and every preemption — offers the lines' heads
in admission order. An offer is taken when a node that takes work has credit and room for the
task. When one is refused and no such node has room for even the least any
waiting task needs (none has credit, say), the gate ends the pass
(:data:`~boson_shared.scheduling.admission.NO_ROOM`) rather than have every
tenant's window offered in vain. When an offer is taken, the task is
handed to the dispatcher (which still picks the node, as without tenants)
and counts against its tenant until its result comes back.

A task's handler waits on one future from the moment it joins its line to
the moment a node takes it: the ticket's ``turn``, which the gate hands to
the dispatcher's hold when it admits the task, and which the dispatcher
resolves with the node. No coroutine of the gate's stays alive per waiting
task, and the handler wakes once, not once for its turn and again for its
node. A cancel, the park sweep or a preemption fail that same future.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from boson_services.balancer.admission_ticket import StartHold, Ticket, UnknownTenantError
from boson_services.balancer.dispatch_records import HeldTooLongError, TaskCancelledHere
from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.takeover import Census
from boson_shared.contract.messages import HeldTask, ResourceVector, TaskSubmitted
from boson_shared.scheduling.admission import NO_ROOM, Admission, Running
from boson_shared.scheduling.amounts import shared_demand
from boson_shared.scheduling.devices import parse_models
from boson_shared.scheduling.tenants import TenantsConfig


class TicketBook:
    """The tickets of every task between its placement and its result (no
    preemption: see :class:`~boson_services.balancer.tenancy.AdmissionGate`)."""

    def __init__(
        self,
        config: TenantsConfig,
        dispatcher: Dispatcher,
        *,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.admission = Admission(config, grace_s=grace_s)
        self.dispatcher = dispatcher
        self.clock = clock
        self.tickets: dict[str, Ticket] = {}
        self._wait_starts: deque[float] = deque()
        self._wait_ids: deque[str] = deque()
        """Each wait's start and task id (two deques in step), in the order
        waits began, for :meth:`overdue`. An entry is its ticket's current
        wait while the ticket waits and its wait began then; other entries
        have ended. Ids, not tickets: an ended wait behind a long one keeps
        no ticket (nor its future, charge and handler's hold) alive, and an
        entry is no object the collector walks."""
        self.preempted: dict[str, int] = dict.fromkeys(self.admission.names, 0)
        """Tasks preempted per tenant."""
        self.admitted_total = 0
        self._pool: tuple[float, ...] = ()
        self._joined = itertools.count()
        self._pass_pending = False
        self._least_fits: bool | None = None
        """Whether a node has credit and room for the least any waiting task
        needs (None: not asked since the pass began or the last admission)."""
        self._away: dict[str, float] = {}
        """Preempted tasks not handed back yet, and when they were preempted."""
        self.census: Census | None = None
        """While set and not done, admission waits for the executors' word on
        the work they hold (:mod:`boson_services.balancer.takeover`)."""
        self.adopted_total = 0

    # -- a task's way in -------------------------------------------------------

    def enter(
        self, task: TaskSubmitted, demand: ResourceVector, start: StartHold, *, front: bool
    ) -> asyncio.Future[str]:
        """The task joins its tenant's line: the future yields the node it
        goes to once admitted and dispatched.

        ``front``: it ran before (preempted, or its node died) and goes back
        to the front of its tenant's line. A task already admitted (a dead
        node's work, a redelivery) keeps its charge and is held at once.
        Raises :class:`UnknownTenantError`; the future fails with
        :class:`TaskCancelledHere`, :class:`HeldTooLongError` (parked) or
        :class:`~boson_services.balancer.dispatch_records.TaskPreemptedHere`. A
        handler cancelled while it waits (draining) calls :meth:`left`.
        """
        task_id = task.task_id
        ticket = self.tickets.get(task_id)
        if ticket is None:
            ticket = self._join(task_id, task, demand, start, front, None)
        else:
            if ticket.told_preempted:
                # Its handler is back from a preemption here. Before the handler
                # woke, a pass may have admitted it again and handed the turn to
                # the dispatcher (that hold is its, not a second one), or a
                # cancel may have ended its wait (it does not join again).
                ticket.told_preempted = False
                if ticket.turn is not None and (ticket.run is not None or ticket.turn.done()):
                    return ticket.turn
            if ticket.run is not None:
                return start(asyncio.get_running_loop().create_future())
            if not ticket.waiting:
                ticket = self._join(task_id, task, demand, start, front, ticket)
        turn = ticket.turn
        assert turn is not None
        self.request_pass()
        return turn

    def _join(
        self,
        task_id: str,
        task: TaskSubmitted,
        demand: ResourceVector,
        start: StartHold,
        front: bool,
        away: Ticket | None,
    ) -> Ticket:
        # The message's fields read once each (a model's attributes cost more
        # than a plain object's).
        tenant, priority, requests = task.tenant, task.priority, task.requests
        if tenant not in self.admission.index:
            raise UnknownTenantError(tenant, self.admission.names)
        if task_id in self.dispatcher.where:
            # Back from a preemption: its node no longer runs it.
            self.dispatcher.complete(task_id)
        now = self.clock()
        models = parse_models(requests.gpu_model) if requests else None
        # The demand as admission and the room test take it, shared by the
        # tickets that ask for it, not one each.
        amounts, vector = shared_demand(demand.as_tuple())
        if away is None:
            since, order, preempted = now, float(next(self._joined)), 0
        else:
            since, order, preempted = away.since, away.order, away.preempted
            front = True
        ticket = Ticket(
            task_id, tenant, vector, models, priority, since, order, start, preempted=preempted
        )
        self.tickets[task_id] = ticket
        self._wait(ticket, now)
        self.admission.submit(
            task_id,
            tenant,
            amounts,
            since,
            priority=priority,
            order=order,
            front=front,
            models=models,
        )
        return ticket

    def _wait(self, ticket: Ticket, now: float) -> None:
        ticket.turn = asyncio.get_running_loop().create_future()
        ticket.queued = True
        ticket.waiting_since = now
        self._wait_starts.append(now)
        self._wait_ids.append(ticket.task_id)
        if len(self._wait_ids) > 2 * len(self.tickets) + 1024:
            # Behind one long wait, ended ones pile up: drop them (and the
            # second entry of a wait that began twice at one reading of the clock).
            starts: deque[float] = deque()
            ids: deque[str] = deque()
            kept: set[str] = set()
            for start, task_id in zip(self._wait_starts, self._wait_ids, strict=True):
                if task_id not in kept and self._current_wait(task_id, start) is not None:
                    kept.add(task_id)
                    starts.append(start)
                    ids.append(task_id)
            self._wait_starts, self._wait_ids = starts, ids

    # -- admitting ---------------------------------------------------------------

    def admit(self) -> int:
        """One admission pass now; tasks admitted."""
        self._pass_pending = False
        self._least_fits = None
        if self.census is not None and not self.census.done(self.clock()):
            return 0  # taking over: what already runs is not counted yet
        admitted = self.admission.admit(self.clock(), self._place, self.dispatcher.any_open)
        self.admitted_total += admitted
        return admitted

    def request_pass(self) -> None:
        """A pass at the next turn of the event loop: the tasks and results
        that arrive together (a prefetch, an envelope) share one pass."""
        if not self._pass_pending:
            self._pass_pending = True
            asyncio.get_running_loop().call_soon(self._pass_if_pending)

    def _pass_if_pending(self) -> None:
        if self._pass_pending:
            self.admit()

    def _place(self, offer: Running) -> int:
        ticket = self.tickets.get(str(offer.key))
        if ticket is None or not ticket.waiting:
            return 0
        turn = ticket.turn
        assert turn is not None
        if not self.dispatcher.could_start(ticket.demand, ticket.models):
            # When not even the least any waiting task needs fits on a node
            # with credit (none has credit, or all are too full), nothing
            # else waiting does either: the pass ends here.
            if self._least_fits is None:
                least = np.asarray(self.admission.least_waiting, dtype=np.float64)
                self._least_fits = bool(np.isfinite(least).all()) and self.dispatcher.could_start(
                    least
                )
            return 0 if self._least_fits else NO_ROOM
        self._least_fits = None  # the hold takes room and credit: ask again
        ticket.run = offer
        ticket.queued = False
        ticket.start(turn)
        return 1

    def set_pool(self) -> None:
        """The live nodes changed: guarantees follow the pool (then a pass)."""
        pool = tuple(float(x) for x in self.dispatcher.pool())
        if pool != self._pool:
            self._pool = pool
            self.admission.set_pool(pool)
        self.admit()

    def adopt(self, node_id: str, tasks: Sequence[HeldTask]) -> int:
        """Charge the work ``node_id`` holds that this gate never admitted (an
        earlier balancer did) against its tenants, as running; how many."""
        now = self.clock()
        adopted = 0
        for held in tasks:
            ticket = self.tickets.get(held.task_id)
            if ticket is not None and ticket.waiting and ticket.tenant == held.tenant:
                # Its placement came back (redelivered: the earlier balancer
                # died before acknowledging it) while it runs: charged once,
                # as running, and its handler goes on as it did before.
                self.admission.withdraw(held.task_id, ticket.tenant)
                ticket.run = self.admission.adopt(
                    held.task_id,
                    held.tenant,
                    held.demand.as_tuple(),
                    now,
                    priority=ticket.priority,
                    order=ticket.order,
                )
                ticket.node = node_id
                assert ticket.turn is not None
                ticket.queued = False
                ticket.start(ticket.turn)
                adopted += 1
                continue
            if ticket is not None or held.tenant not in self.admission.index:
                continue
            demand = held.demand.as_tuple()
            order = float(next(self._joined))
            run = self.admission.adopt(
                held.task_id, held.tenant, demand, now, priority=held.priority, order=order
            )
            self.tickets[held.task_id] = Ticket(
                held.task_id,
                held.tenant,
                shared_demand(demand)[1],
                None,
                held.priority,
                now,
                order,
                _adopted_start,
                run=run,
                node=node_id,
            )
            adopted += 1
        self.adopted_total += adopted
        return adopted

    # -- a task's way out ------------------------------------------------------------

    def finished(self, task_id: str) -> bool:
        """Its result came back: its quota is free. Whether that changed admission."""
        ticket = self.tickets.get(task_id)
        if ticket is None or ticket.waiting:
            return False  # a waiting task's result is a leftover of an earlier run
        del self.tickets[task_id]
        if ticket.run is not None:
            self.admission.release(ticket.run)
            return True
        return False

    def left(self, task_id: str) -> None:
        """It leaves the balancer without a result (cancelled, parked, given up,
        drained): out of its line, or its charge freed."""
        ticket = self.tickets.pop(task_id, None)
        if ticket is None:
            return
        if ticket.run is not None:
            self.admission.release(ticket.run)
        elif ticket.queued:
            # In its line even if its future is done: a handler cancelled
            # while it waits (draining) finds its future cancelled already.
            self.admission.withdraw(task_id, ticket.tenant)
            ticket.queued = False
            if ticket.turn is not None:
                ticket.turn.cancel()

    def cancel(self, task_id: str) -> bool:
        """A cancel names a task waiting in its line: its handler reports it
        cancelled. Whether it was waiting."""
        ticket = self.tickets.get(task_id)
        if ticket is None or not ticket.waiting:
            return False
        if not ticket.told_preempted:
            del self.tickets[task_id]
        # Else its handler, woken by a preemption, has not come back to enter
        # yet: the ticket stays (out of its line) for enter to hand it this
        # failed turn rather than start a new one; the handler then reports
        # the task cancelled and calls left, which forgets the ticket.
        self.admission.withdraw(task_id, ticket.tenant)
        ticket.queued = False
        assert ticket.turn is not None
        ticket.turn.set_exception(TaskCancelledHere(task_id))
        return True

    def overdue(self, max_age_s: float) -> int:
        """Fail the turns of tasks waiting ``max_age_s`` or longer with
        :class:`HeldTooLongError` (their handlers park them); how many."""
        deadline = self.clock() - max_age_s
        starts, ids = self._wait_starts, self._wait_ids
        count = 0
        while starts:
            start = starts[0]
            ticket = self._current_wait(ids[0], start)
            if ticket is not None and start > deadline:
                break
            starts.popleft()
            ids.popleft()
            if ticket is None:
                continue  # that wait ended
            del self.tickets[ticket.task_id]
            self.admission.withdraw(ticket.task_id, ticket.tenant)
            ticket.queued = False
            assert ticket.turn is not None
            ticket.turn.set_exception(HeldTooLongError(f"waited {max_age_s:g}s for admission"))
            count += 1
        return count

    def _current_wait(self, task_id: str, start: float) -> Ticket | None:
        """The ticket whose wait goes on and began at ``start`` (None: the
        wait listed as ``start``, ``task_id`` has ended)."""
        ticket = self.tickets.get(task_id)
        if ticket is not None and ticket.waiting and ticket.waiting_since == start:
            return ticket
        return None

    # -- reading -----------------------------------------------------------------------

    def counts(self) -> Iterator[tuple[str, int, int]]:
        """Per tenant: its name, tasks waiting and tasks admitted."""
        running = dict.fromkeys(self.admission.names, 0)
        for ticket in self.tickets.values():
            if ticket.run is not None:
                running[ticket.tenant] += 1
        for name in self.admission.names:
            yield name, self.admission.waiting(name), running[name]


def _adopted_start(future: asyncio.Future[str]) -> asyncio.Future[str]:
    """An adopted task's hold: it never has one here (it came back after a
    preemption as a new ticket, or it ends with its result)."""
    raise RuntimeError("an adopted task is not held by this balancer")


__all__ = ["TicketBook"]
