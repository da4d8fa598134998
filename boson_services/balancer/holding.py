"""A held task's way through the dispatcher: held, dispatched, let go, its result back.

A hold that admission let through goes straight to a node that can start it
when its placed node cannot (:meth:`Holding._start_elsewhere`); any other
waits in its placed node's queue or the flexible queue for the pump. A held
task may be let go before any node takes it — parked past its age,
released, cancelled or preempted — and its future says which. A result
gives its node the credit and the room back, and its run time feeds the
node's window (:mod:`boson_services.balancer.dispatch_state`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Sequence

import numpy as np

from boson_services.balancer.dispatch_pump import DispatchPump
from boson_services.balancer.dispatch_records import (
    HeldTask,
    HeldTooLongError,
    NodeView,
    TaskCancelledHere,
    TaskPreemptedHere,
)
from boson_shared.contract.messages import ResourceVector
from boson_shared.scheduling.amounts import shared_gridded
from boson_shared.scheduling.devices import mask_of, parse_models, to_milli

TASK_TIME_RISE = 0.5
"""Weight of a longer task time in a node's running mean: the window shrinks fast."""
TASK_TIME_DECAY = 0.1
"""Weight of a shorter one: the window widens slowly again."""


class Holding(DispatchPump):
    """Holding tasks until a node takes them, letting them go, and their
    results (dispatching: :class:`~boson_services.balancer.dispatch_pump.DispatchPump`)."""

    # -- holding -----------------------------------------------------------

    def hold(
        self,
        task_id: str,
        demand: ResourceVector,
        target: str | None,
        *,
        job: object = None,
        urgent: bool = False,
        handler: str | None = None,
        timeout_s: float | None = None,
        gpu_model: str | None = None,
        devices: Sequence[int] = (),
        future: asyncio.Future[str] | None = None,
    ) -> asyncio.Future[str]:
        """Hold a task until a node takes it; the future yields that node.

        ``future``: the one to resolve (the admission gate's, which the
        task's handler already waits on: one future and one wake-up a task
        from its tenant's line to its node); a new one by default. The gate
        admits a task when some node can start it now, so if its placed
        node cannot, it goes straight to one that can (see
        :meth:`_start_elsewhere`) rather than into that node's queue.

        ``job`` groups held tasks for the flexible queue's smallest-pending-job-
        first order (``None``: the task is a job of its own); ``urgent`` marks
        a dead node's work, offered capacity first; ``handler`` and
        ``timeout_s`` say how long it is expected to run once dispatched.
        ``gpu_model`` limits its GPU devices; ``devices``, the scheduler's pick
        on ``target``, are kept if still free when it goes there, else devices
        are picked again (:meth:`devices_of` tells which).
        """
        self.complete(task_id)  # a redelivery of something we dispatched before
        only_room, self._only_room = self._only_room, None
        admitted = future is not None
        if future is None:
            future = asyncio.get_running_loop().create_future()
        held = HeldTask(
            task_id,
            shared_gridded(demand.as_tuple()),
            target,
            self.clock(),
            future,
            task_id if job is None else job,
            urgent,
            handler,
            timeout_s,
            parse_models(gpu_model),
            mask_of(devices),
        )
        self.held[task_id] = held
        self.typical.observe(held.demand)
        node = self.nodes.get(target) if target is not None else None
        if admitted and self._start_elsewhere(held, node, only_room):
            return future  # dispatched at once: nothing for the sweep to watch
        self._by_age[id(held)] = held
        if len(self._by_age) > 2 * len(self.held) + 1024:
            # A hold replaced by a second hold of its task, then failed or
            # cancelled, ended without leaving the list (it is let go by its
            # task id, which names the second): drop such holds rather than
            # let them wait to reach the front.
            self._by_age = OrderedDict(
                (key, listed) for key, listed in self._by_age.items() if not listed.future.done()
            )
        if node is not None and node.takes_work and not self.is_hot(node):
            self.by_node.setdefault(node.node_id, deque()).append(held)
            self._queued[node.node_id] = None
        else:
            self.flexible.append(held)
        self.pump()
        return future

    def _start_elsewhere(
        self,
        held: HeldTask,
        placed: NodeView | None,
        only_room: tuple[tuple[bytes, frozenset[str] | None], NodeView] | None = None,
    ) -> bool:
        """Dispatch admitted work its placed node cannot start now to a node
        that can: what a steal would do at the pump, without the queue, the
        pump and the steal's walk over the donors. Admission already chose
        this task's turn, so no older held work has a claim on the room
        first. False (hold it as usual) if its placed node can start it or
        no open node has room for it.

        ``only_room``: :meth:`could_start`'s find, unchanged since; when it
        was for this demand, its node is the only candidate the walk over
        the open nodes would find (:meth:`_pick_any`'s pick among one)."""
        if not self._spare or held.future.done():
            return False
        if placed is not None and self.accepts(placed) and self._fits(placed, held.demand):
            return False  # its own node takes it at the pump
        if only_room is not None and only_room[0] == (held.demand.tobytes(), held.models):
            node: NodeView | None = only_room[1]
            if self.reservation is not None and not self._admits(held, only_room[1]):
                node = None  # as _pick_any would: it would delay the head's reservation
        else:
            node = self._pick_any(held, self._open_nodes())
        if node is None:
            return False
        self._assign(held, node)
        self.stolen_total += 1
        return True

    def overdue(self, max_age_s: float) -> int:
        """Fail the futures of tasks held ``max_age_s`` or longer with
        :class:`HeldTooLongError` (their handlers park them); how many."""
        deadline = self.clock() - max_age_s
        ages = self._by_age
        count = 0
        while ages:
            held = ages[next(iter(ages))]
            if not held.future.done() and held.since > deadline:
                break
            ages.popitem(last=False)
            if held.future.done():
                continue  # ended some other way (a hold replaced by a second one)
            if self.held.get(held.task_id) is held:
                del self.held[held.task_id]
            self.head.released(held.task_id)
            held.future.set_exception(HeldTooLongError(f"held {max_age_s:g}s"))
            count += 1
        return count

    def release(self, task_id: str) -> None:
        """Forget a held task (parked, or its handler was cancelled)."""
        held = self.held.pop(task_id, None)
        if held is not None:
            self._by_age.pop(id(held), None)
            if not held.future.done():
                held.future.cancel()
        self.head.released(task_id)

    def cancel(self, task_id: str) -> bool:
        """Stop holding a task that was cancelled: its future raises
        :class:`TaskCancelledHere`; whether it was held."""
        return self._stop_holding(task_id, TaskCancelledHere(task_id))

    def preempt(self, task_id: str) -> bool:
        """Stop holding a task whose admission was taken back: its future
        raises :class:`TaskPreemptedHere`; whether it was held."""
        return self._stop_holding(task_id, TaskPreemptedHere(task_id))

    def _stop_holding(self, task_id: str, outcome: Exception) -> bool:
        """Let a held task go (a reservation it held goes with it), its future
        failing with ``outcome``; whether it was held."""
        held = self.held.pop(task_id, None)
        if held is None:
            return False
        self._by_age.pop(id(held), None)
        if held.future.done():
            return False
        self.head.released(task_id)
        held.future.set_exception(outcome)
        return True

    # -- results -----------------------------------------------------------

    def complete(self, task_id: str, wall_s: float | None = None, *, pump: bool = True) -> None:
        """A task's result came back (or it left): its node regains the credit.

        ``wall_s``, the run time the result reports, sizes the node's window.
        ``pump=False`` leaves dispatching to the caller's one :meth:`pump`
        after a batch of results (a pump orders the flexible queue's window).
        """
        node_id = self.where.pop(task_id, None)
        demand = self._demand_of.pop(task_id, None)
        self.head.finished(task_id, wall_s)
        mask = self._devices_of.pop(task_id, 0)
        self._sent_at.pop(task_id, None)
        if node_id is None:
            return
        node = self.nodes.get(node_id)
        if node is not None:
            self.room_changed += 1
            self._only_room = None
            node.in_flight.discard(task_id)
            self._spare[node_id] = None
            if demand is not None:
                # Its resources are free now, not at the next snapshot: work
                # waiting for room (pending) must not wait a snapshot interval.
                node.allocated = np.maximum(node.allocated - demand, 0.0)
                node.gpus.give(to_milli(demand[2]), mask)
            if wall_s is not None and wall_s >= 0:
                if node.task_s is None:
                    node.task_s = wall_s
                else:
                    weight = TASK_TIME_RISE if wall_s > node.task_s else TASK_TIME_DECAY
                    node.task_s += weight * (wall_s - node.task_s)
                self.resize(node)
            if pump:
                self.pump()


__all__ = ["TASK_TIME_DECAY", "TASK_TIME_RISE", "Holding"]
