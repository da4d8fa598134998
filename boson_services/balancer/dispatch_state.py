"""The dispatcher's state, and what it tells of the nodes: credit, room, the head reservation.

Credit of a node = its *window* − tasks dispatched to it whose result has
not come back. It never goes below zero: that is the invariant "no node over
its credit" the integration test checks. Credit counts tasks; resources are
checked too, on every path: a task goes to a node only if its demand fits
the node's capacity less what the node holds (the snapshot's allocation, and
never less than what this balancer dispatched there in the last few seconds,
which the snapshot may not show yet). Schedulers reserve optimistically, each unaware of the others'
reservations until the next snapshot, so several may place work on the same
free room; here it meets the node's real room, and the surplus waits or goes
elsewhere.

The window is ``slots × credit_per_slot`` until the node's results report how
long its tasks run. Then it is sized so that a node holds about
``queue_budget_s`` of queued work per slot — ``queue_budget_s ÷ task time``
tasks per slot, never fewer than ``credit_per_slot`` nor more than
``max_credit_per_slot``. Long tasks keep the small window (work stays in the
balancer, where it can still move); short ones get a window that covers the
dispatch → result round trip, or a node would idle between results (a few
hundred no-op tasks per second, whatever the node could do). The task time
is a running mean that follows longer tasks fast and shorter ones slowly,
so slow work shrinks the window at once (one noisy sample only halfway).

:class:`DispatchState` holds the held work, the nodes and the credit, and
answers the questions every path asks (credit, room, the head
reservation's consent); :class:`~boson_services.balancer.dispatch_pump.DispatchPump`
adds dispatching on top, :class:`~boson_services.balancer.holding.Holding`
holding, and :class:`~boson_services.balancer.dispatcher.Dispatcher` the
cluster view.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

import numpy as np

from boson_services.balancer.dispatch_records import HeldTask, NodeView
from boson_services.balancer.head import HeadBook
from boson_shared.scheduling.balancing import AGE_LIMIT_S
from boson_shared.scheduling.devices import indices_of, to_milli
from boson_shared.scheduling.head_reservation import RESERVATION_LAPSE_S, HeadReservation
from boson_shared.scheduling.table import FIT_EPSILON
from boson_shared.scheduling.typical_demand import LongRunDemand

MISSED_RESULT_AFTER_S = 60.0
"""How long a node must be seen idle before the credit of results missed there
comes back: longer than the longest retry delay plus a snapshot's lag."""


Room = tuple[float, float, float]
"""CPU, memory and GPU, as Python floats (the room tests' ``need``)."""


def has_room(node: NodeView, need: Room) -> bool:
    """Whether ``node``'s free room (capacity less allocated) is at least
    ``need`` in every resource. The same float arithmetic as the arrays'
    ``capacity - allocated >= need``, on three Python floats: on three
    numbers, each array operation costs more than the whole test."""
    cap: list[float] = node.capacity.tolist()
    used: list[float] = node.allocated.tolist()
    return (
        cap[0] - used[0] >= need[0] and cap[1] - used[1] >= need[1] and cap[2] - used[2] >= need[2]
    )


class DispatchState:
    """Held work, node credit and the room tests (no dispatching: see
    :class:`~boson_services.balancer.dispatch_pump.DispatchPump`)."""

    def __init__(
        self,
        *,
        credit_per_slot: int,
        max_credit_per_slot: int | None = None,
        queue_budget_s: float = 0.05,
        hot_threshold: float,
        retarget_after_s: float,
        imbalance_threshold: float,
        age_limit_s: float = AGE_LIMIT_S,
        reservation_lapse_s: float = RESERVATION_LAPSE_S,
        missed_result_after_s: float = MISSED_RESULT_AFTER_S,
        rng: np.random.Generator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credit_per_slot = credit_per_slot
        self.max_credit_per_slot = max(credit_per_slot, max_credit_per_slot or credit_per_slot)
        self.queue_budget_s = queue_budget_s
        self.hot_threshold = hot_threshold
        self.retarget_after_s = retarget_after_s
        self.imbalance_threshold = imbalance_threshold
        self.age_limit_s = age_limit_s
        self.missed_result_after_s = missed_result_after_s
        self.missed_results_total = 0
        """Tasks whose credit came back without their result (see
        :mod:`boson_services.balancer.dispatcher`)."""
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.clock = clock
        self.nodes: dict[str, NodeView] = {}
        self.where: dict[str, str] = {}
        """Task id → node it was dispatched to, until its result arrives."""
        self._demand_of: dict[str, np.ndarray] = {}
        """What each dispatched task holds on its node, given back by its result."""
        self._sent_at: dict[str, float] = {}
        """When each task still out was dispatched (what a snapshot may not show yet)."""
        self._devices_of: dict[str, int] = {}
        """Task id → the GPU devices it was dispatched to (a mask), until its result."""
        self.by_node: dict[str, deque[HeldTask]] = {}
        self._spare: dict[str, None] = {}
        """Nodes that may take work now, in the order first seen (an ordered
        set). Every node that does (alive, not hot, with credit) is here: a
        result or a snapshot puts its node(s) back, and a pump drops those it
        finds full or unusable. A pump looks at these, not at every node, so
        under load — when few nodes have credit — it costs next to nothing
        however large the cluster."""
        self._queued: dict[str, None] = {}
        """Nodes whose queue of held work may be non-empty (an ordered set)."""
        self.flexible: deque[HeldTask] = deque()
        self.typical = LongRunDemand()
        """What a typical held task asks for (the flexible queue's clean-fit pass)."""
        self.held: dict[str, HeldTask] = {}
        self._by_age: OrderedDict[int, HeldTask] = OrderedDict()
        """Every hold still waiting for a node, in the order made (oldest
        first), by the hold's identity (a task held twice is two holds), for
        :meth:`~boson_services.balancer.holding.Holding.overdue`: one ordered
        map, not a timer per held task. A hold leaves it when a node takes it
        or it is let go, so it keeps no ended hold (nor its future) alive
        behind a long one."""
        self.dispatched_total = 0
        self.pumps = 0
        self.retargeted_total = 0
        self.stolen_total = 0
        """Tasks a node with spare credit took from a node without (see
        :meth:`~boson_services.balancer.dispatch_pump.DispatchPump._steal`)."""
        self._any_cool = True
        self.head = HeadBook(clock, reservation_lapse_s)
        """The head reservation and the run-time estimates behind it."""
        self.room_changed = 0
        """Counts the events that may give a node room or credit (a result,
        a snapshot); between two, holds only take room away."""
        self._unfit: dict[tuple[bytes, frozenset[str] | None], int] = {}
        """Demands :meth:`could_start` found no room for, and ``room_changed`` then."""
        self._only_room: tuple[tuple[bytes, frozenset[str] | None], NodeView] | None = None
        """What :meth:`could_start` last found, when the node it found was the
        last of the spare set it walked (so the only open node with room for
        that demand): its key and that node. Valid until the room changes
        (an assign, a result, a snapshot), which clear it, and taken by the
        next :meth:`~boson_services.balancer.holding.Holding.hold`, which so need
        not walk the open nodes again."""
        self._needs: dict[bytes, tuple[Room, int]] = {}
        """Per distinct demand (its bytes), what the fit rule compares a node's
        free room with (CPU and memory less the tolerance, no GPU part) and
        its GPU part in milli: worked out once, not on every room test."""

    # -- credit ------------------------------------------------------------

    def resize(self, node: NodeView) -> None:
        """Recompute the tasks ``node`` may hold at once (see the module docstring)."""
        per_slot = self.credit_per_slot
        if node.task_s is not None and self.max_credit_per_slot > per_slot:
            fits = self.queue_budget_s / max(node.task_s, 1e-6)
            per_slot = max(per_slot, min(self.max_credit_per_slot, int(fits)))
        node.window = node.slots * per_slot

    def credit(self, node_id: str) -> int:
        node = self.nodes.get(node_id)
        if node is None or not node.takes_work:
            return 0
        # Zero, not less, when a slower task just shrank the window below what is out.
        return max(0, node.window - len(node.in_flight))

    def is_hot(self, node: NodeView) -> bool:
        """Too loaded for new work — unless every node is (then hotness says nothing)."""
        return node.measured >= self.hot_threshold and self._any_cool

    def accepts(self, node: NodeView) -> bool:
        """Whether ``node`` takes work now: alive, not on probation, not hot,
        with credit (:meth:`credit` and :meth:`is_hot` written out: every
        pump, admission pass and room test asks this of node after node)."""
        return (
            node.alive
            and not node.on_probation
            and node.window > len(node.in_flight)
            and not (node.measured >= self.hot_threshold and self._any_cool)
        )

    # -- room --------------------------------------------------------------

    def could_start(self, demand: np.ndarray, models: frozenset[str] | None = None) -> bool:
        """Whether a node that takes work now has credit and room for ``demand``
        (the admission gate's test: admitted work should not wait here).

        A demand found no room stays without it until a result or a snapshot
        (holds only take room): asked again meanwhile, the answer costs a
        lookup, not a walk over the open nodes."""
        raw = demand.tobytes()
        key = (raw, models)
        if self._unfit.get(key) == self.room_changed:
            return False
        need, milli = self._need(raw, demand)
        fits = False
        self._only_room = None
        closed: list[str] = []
        # The first open node with room will do: stop there. Nodes found not
        # to take work leave the spare set, as in _open_nodes.
        nodes = self.nodes
        for node_id in self._spare:
            node = nodes.get(node_id)
            if node is None or not self.accepts(node):
                closed.append(node_id)
            elif has_room(node, need) and (milli == 0 or node.gpus.fits(milli, models)):
                fits = True
                if node_id == next(reversed(self._spare)):
                    # The last of the walk: every node before it is closed
                    # or has no room for this demand, so it is the only one.
                    self._only_room = (key, node)
                break
        for node_id in closed:
            del self._spare[node_id]
        if not fits:
            if len(self._unfit) > 1024:
                self._unfit.clear()
            self._unfit[key] = self.room_changed
        return fits

    def _need(self, raw: bytes, demand: np.ndarray) -> tuple[Room, int]:
        """The fit rule's ``need`` (for :func:`has_room`) and GPU milli of a
        demand (``raw``: its bytes)."""
        known = self._needs.get(raw)
        if known is None:
            cpu, memory, gpu = demand.tolist()
            if len(self._needs) >= 1024:
                self._needs.clear()
            need = (cpu - FIT_EPSILON, memory - FIT_EPSILON, 0.0)
            known = self._needs[raw] = (need, to_milli(gpu))
        return known

    def any_open(self) -> bool:
        """Whether a node takes work now and has credit. Nodes found not to
        leave the spare set, as in _open_nodes: under load, a lookup or two."""
        spare = self._spare
        while spare:
            node_id = next(iter(spare))
            node = self.nodes.get(node_id)
            if node is not None and self.accepts(node):
                return True
            del spare[node_id]
        return False

    def pool(self) -> np.ndarray:
        """The total capacity of the live nodes (running work on probation counts)."""
        total = np.zeros(3)
        for node in self.nodes.values():
            if node.alive:
                total = total + node.capacity
        return total

    def in_flight_demand(self) -> np.ndarray:
        """What the dispatched tasks whose results have not come back hold."""
        total = np.zeros(3)
        for demand in self._demand_of.values():
            total = total + demand
        return total

    @staticmethod
    def _fits(node: NodeView, demand: np.ndarray) -> bool:
        cpu, memory, gpu = demand.tolist()
        return has_room(node, (cpu - FIT_EPSILON, memory - FIT_EPSILON, gpu - FIT_EPSILON))

    def _open_nodes(self) -> list[NodeView]:
        """Nodes that take work now; drops from the spare set those that do not."""
        open_nodes: list[NodeView] = []
        for node_id in list(self._spare):
            node = self.nodes.get(node_id)
            if node is not None and self.accepts(node):
                open_nodes.append(node)
            else:
                del self._spare[node_id]
        return open_nodes

    # -- the head reservation -------------------------------------------

    @property
    def reservation(self) -> HeadReservation | None:
        """The head of the waiting order's reservation (its ``key`` is the task id)."""
        return self.head.reservation

    def _reserve_for(self, held: HeldTask | None, now: float) -> None:
        self.head.keep_for(
            None if held is None else held.task_id,
            np.zeros(3) if held is None else held.demand,
            [
                (n.node_id, n.capacity - n.allocated, n.takes_work, n.gpus)
                for n in self.nodes.values()
            ],
            now,
        )

    def _expected_s(self, held: HeldTask) -> float:
        return self.head.expected_s(held.handler, held.timeout_s)

    def _admits(self, held: HeldTask, node: NodeView) -> bool:
        """Whether ``held`` may start on ``node`` now without delaying the head's reservation."""
        return self.head.admits(
            held.task_id, node.node_id, held.demand, self._expected_s(held), node.gpus
        )

    # -- views -------------------------------------------------------------

    def devices_of(self, task_id: str) -> tuple[int, ...]:
        """The GPU devices a dispatched task goes to on its node (none: no GPU part)."""
        return indices_of(self._devices_of.get(task_id, 0))

    def pending(self) -> int:
        """Held work with no usable node (the backlog KEDA scales on)."""
        return sum(1 for held in self.flexible if not held.future.done())

    def alive_nodes(self) -> Iterable[str]:
        return (node_id for node_id, node in self.nodes.items() if node.alive)


__all__ = ["MISSED_RESULT_AFTER_S", "DispatchState", "Room", "has_room"]
