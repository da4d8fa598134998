"""Dispatching held work: the pump, a node's own queue, stealing, the flexible queue.

Each held task waits on a future in a FIFO queue: the queue of its placed
node, or the *flexible* queue (pending work, and work whose node is hot,
dead or long busy), which any node with credit may take.
:meth:`DispatchPump.pump` runs whenever credit or the cluster view changes and
resolves as many futures as credit allows — no task polls, and a pump looks
only at nodes that may have credit, so its cost grows little with the
cluster under load (``docs/performance.md#the-balancers-dispatcher``). It is
work-conserving: a task waits for its placed node only while no other node
could start it — a node with spare credit takes work held for a node without
(oldest first), so under moderate load binpack's one busy node does not
queue work while another node idles.

The flexible queue is offered to open nodes in two passes (as the
simulator's balancer, ``boson/simulation/drainers.py``): first each
task may go only to a node it fits *cleanly* — leaving room for whole
typical tasks, or filling a remnant no typical task could use (see
:func:`~boson_shared.scheduling.balancing.fits_cleanly`; the typical demand is
learnt from every held task) — then anywhere it fits. A dead node's work and
work held past the age limit take any room in the first pass already. In a
full cluster this keeps the smallest pending job from splitting a freed hole
that a larger waiting task fills exactly (``docs/scheduling.md`` has what it
is worth on a real trace).

No starvation: the held task at the head of the flexible queue's order
that fits no open node gets a head reservation
(:mod:`~boson_shared.scheduling.head_reservation`) on the nodes expected to
have room for it soonest — expected from the tasks in flight there: when
each was dispatched, plus its handler's recent run time (or its
``timeout_s`` before the handler has reported one). Every other dispatch —
a node's own queue, stealing, the rest of the flexible queue — backfills
around it: a reserved node takes only work expected to end before the head
needs it, or that fits beside the head then; work its node refuses that way
joins the flexible queue, where other nodes may take it. The reservation
lapses after ``reservation_lapse_s`` and is remade from fresh estimates.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from boson_services.balancer.dispatch_records import HeldTask, NodeView
from boson_services.balancer.dispatch_state import DispatchState, has_room
from boson_shared.scheduling.balancing import dispatch_order, fits_cleanly, power_of_two_choices
from boson_shared.scheduling.devices import to_milli
from boson_shared.scheduling.fgd_scoring import bottleneck

FLEXIBLE_LOOKAHEAD = 64
"""How far past a stuck head the flexible queue looks (big tasks do not block small ones)."""
FLEXIBLE_WINDOW = 256
"""Held tasks at the front of the flexible queue one pump orders and may dispatch
(the simulator's balancer window, ``boson.simulation.drainers.DEFAULT_WINDOW``)."""


class DispatchPump(DispatchState):
    """Resolving held futures as credit and room allow (the state and its
    tests: :class:`~boson_services.balancer.dispatch_state.DispatchState`)."""

    # -- dispatching -------------------------------------------------------

    def pump(self) -> None:
        """Resolve as many held tasks as credit allows: placed nodes first,
        then the flexible queue, then spare credit takes work that waits for
        a node without any. Only nodes that may have credit are looked at."""
        self.pumps += 1
        # A node's own queue moves only if it has work held and credit: walk
        # the smaller of the two sets (under load few nodes have credit; when
        # idle, few have work held).
        if len(self._spare) <= len(self._queued):
            candidates, other = list(self._spare), self._queued
        else:
            candidates, other = list(self._queued), self._spare
        for node_id in candidates:
            if node_id in other:
                self._serve_own_queue(node_id)
        self._pump_flexible()
        if self._spare and self._queued:
            self._steal()

    def _serve_own_queue(self, node_id: str) -> None:
        queue = self.by_node.get(node_id)
        node = self.nodes.get(node_id)
        if node is not None and self.accepts(node):
            while queue and self.credit(node_id) > 0:
                held = queue[0]
                if held.future.done():
                    queue.popleft()
                    continue
                if not self._fits(node, held.demand):
                    # Credit counts tasks, not resources: several schedulers
                    # may each have placed work here against the same free
                    # room. What does not fit waits (or another node steals it).
                    break
                queue.popleft()
                if self._admits(held, node):
                    self._assign(held, node)
                else:
                    # It would delay the head's reservation here: any other
                    # node may take it from the flexible queue.
                    self.flexible.append(held)
                    self.retargeted_total += 1
        if not queue:
            self._queued.pop(node_id, None)

    # -- stealing ----------------------------------------------------------

    def _steal(self) -> None:
        """Nodes with spare credit and nothing held for them take work held
        for nodes that have no credit, oldest first.

        Placement chose a node by its resources; credit is about its queue.
        Work waiting for its placed node's queue while another node could
        start it now only adds latency (under moderate load binpack puts
        everything on one node and the other idles), so the dispatcher stays
        work-conserving; a placed node with credit still gets its own work.
        """
        open_nodes = [node for node in self._open_nodes() if not self.by_node.get(node.node_id)]
        if not open_nodes:
            return
        # After the placed-node pass, a queue that still holds work belongs
        # to a node that takes none now (no credit, hot or gone).
        donors: list[tuple[str, deque[HeldTask]]] = []
        for node_id in list(self._queued):
            queue = self.by_node.get(node_id)
            if queue:
                donors.append((node_id, queue))
            else:
                del self._queued[node_id]
        while open_nodes and donors:
            # The donor whose head has waited longest gives first.
            node_id, queue = (
                donors[0] if len(donors) == 1 else min(donors, key=lambda d: d[1][0].since)
            )
            held = queue.popleft()
            if not held.future.done():
                node = self._pick_any(held, open_nodes)
                if node is None:
                    queue.appendleft(held)  # fits no open node: this donor gives no more now
                    donors = [d for d in donors if d[1] is not queue]
                    continue
                self._assign(held, node)
                self.stolen_total += 1
                if not self.accepts(node):
                    open_nodes = [n for n in open_nodes if n is not node]
            if not queue:
                donors = [d for d in donors if d[1] is not queue]
                # Out of the queued set now, not at the next steal's scan:
                # the next pump (the next result's) then has no steal to try.
                del self._queued[node_id]

    # -- the flexible queue ------------------------------------------------

    def _pump_flexible(self) -> None:
        if not self.flexible:
            return
        # Pumps run on every hold and every result: when no node has credit
        # (the usual case under load) they must cost next to nothing.
        open_nodes = self._open_nodes()
        if not open_nodes:
            return
        # The window the pump may dispatch from, in the balancing library's
        # order (docs/design.md#balancing, as the simulator's balancer): a dead node's work,
        # then work held past age_limit_s, then the smallest pending job first.
        window: list[HeldTask] = []
        while self.flexible and len(window) < FLEXIBLE_WINDOW:
            held = self.flexible.popleft()
            if not held.future.done():
                window.append(held)
        now = self.clock()
        res = self.reservation
        # The reservation's holder keeps its place at the head, as a dead
        # node's work does (also when parked and held again): a promise later
        # arrivals cannot take back.
        holder = [res is not None and h.task_id == res.key for h in window]
        order = dispatch_order(
            [h.job for h in window],
            [1] * len(window),
            [now - h.since for h in window],
            [h.urgent or mine for h, mine in zip(window, holder, strict=True)],
            self.age_limit_s,
        )
        taken = [False] * len(window)
        # Within one pump nodes only close and allocations only grow, so a
        # demand that fits no open node now fits none later in the pump: the
        # lookahead past a stuck head (usually many equal demands) costs a set
        # lookup each, not a feasibility test per node, in either pass. (A
        # clean fit can appear as a node fills: its key is not the any-fit one.)
        unfit: set[tuple[bytes, bool, float, frozenset[str] | None]] = set()
        self.typical.refresh()
        typical = self.typical.points
        if np.any(typical > 0):
            # The bottleneck among the nodes that may take work now: the
            # cluster-wide one would cost a walk over every node per pump.
            b = bottleneck(np.array([n.capacity for n in open_nodes]), typical)
            aged = [
                h.urgent or mine or now - h.since >= self.age_limit_s
                for h, mine in zip(window, holder, strict=True)
            ]
            self._offer(window, order, taken, open_nodes, (typical, b), aged, unfit)
        self._offer(window, order, taken, open_nodes, None, [], unfit)
        # EASY: the first in order still waiting is the head; it gets the
        # reservation every later pump's dispatches backfill around.
        head = next((window[i] for i in order if not taken[i]), None)
        self._reserve_for(head, now)
        # What was not dispatched goes back to the front, in queue order.
        self.flexible.extendleft(reversed([h for h, t in zip(window, taken, strict=True) if not t]))

    def _offer(
        self,
        window: list[HeldTask],
        order: list[int],
        taken: list[bool],
        open_nodes: list[NodeView],
        clean: tuple[np.ndarray, int] | None,
        aged: list[bool],
        unfit: set[tuple[bytes, bool, float, frozenset[str] | None]],
    ) -> None:
        """One pass of the flexible window over the open nodes, in ``order``.

        ``clean`` = (typical demand points, bottleneck): the clean-fit pass, in which
        the entries marked in ``aged`` may take any room; ``None``: anything
        that fits. ``unfit``: what found no node earlier in this pump.
        """
        looked = 0
        for k in order:
            if not open_nodes or looked >= FLEXIBLE_LOOKAHEAD:
                break
            if taken[k]:
                continue
            held = window[k]
            strict = clean if clean is not None and not aged[k] else None
            key = (
                held.demand.tobytes(),
                strict is not None,
                self._expected_s(held),
                held.models,
            )
            node = None if key in unfit else self._pick_any(held, open_nodes, strict)
            if node is None:
                unfit.add(key)
                looked += 1
                continue
            taken[k] = True
            self._assign(held, node)
            if not self.accepts(node):
                open_nodes.remove(node)

    # -- picking a node, and dispatching -----------------------------------

    def _pick_any(
        self,
        held: HeldTask,
        open_nodes: list[NodeView],
        clean: tuple[np.ndarray, int] | None = None,
    ) -> NodeView | None:
        demand = held.demand
        models = held.models
        # The table's fit rule: CPU and memory with its one tolerance, GPUs per device.
        need, milli = self._need(demand.tobytes(), demand)
        candidates = [
            node
            for node in open_nodes
            if has_room(node, need) and (milli == 0 or node.gpus.fits(milli, models))
        ]
        if candidates and self.reservation is not None:
            candidates = [node for node in candidates if self._admits(held, node)]
        if candidates and clean is not None:
            free = np.array([node.capacity - node.allocated for node in candidates])
            ok = fits_cleanly(free, demand, clean[0], clean[1]).tolist()
            candidates = [node for node, good in zip(candidates, ok, strict=True) if good]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]  # the two-choices rule has nothing to choose
        loads = np.array([len(n.in_flight) / n.window for n in candidates])
        loads = loads + np.array([n.measured for n in candidates])
        return candidates[power_of_two_choices(len(candidates), loads, self.rng)]

    def _assign(self, held: HeldTask, node: NodeView) -> None:
        self._only_room = None  # the node's room and credit shrink
        expected_s = self._expected_s(held)
        milli = to_milli(held.demand[2])
        mask = 0
        if milli:
            prefer = held.prefer if node.node_id == held.target else 0
            # Backfill keeps off the devices the head's reservation holds.
            limit = self.head.device_limit(held.task_id, node.node_id, expected_s)
            taken = node.gpus.take(milli, held.models, prefer, limit)
            # Its own placed node's queue is served on credit alone: if our
            # view has no room for it, the scheduler's pick stands (or, with
            # none, the executor picks among its own free devices).
            mask = taken if taken >= 0 else prefer
            self._devices_of[held.task_id] = mask
        self.head.dispatched(
            held.task_id, node.node_id, held.demand, held.handler, expected_s, mask
        )
        node.in_flight.add(held.task_id)
        node.allocated = node.allocated + held.demand
        self.where[held.task_id] = node.node_id
        self._demand_of[held.task_id] = held.demand
        self._sent_at[held.task_id] = self.clock()
        self.held.pop(held.task_id, None)
        self._by_age.pop(id(held), None)
        self.dispatched_total += 1
        held.future.set_result(node.node_id)


__all__ = ["FLEXIBLE_LOOKAHEAD", "FLEXIBLE_WINDOW", "DispatchPump"]
