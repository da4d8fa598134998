"""Credit-based dispatch of held work: who may send what to which node, now.

Each held task waits on a future in a FIFO queue: the queue of its placed
node, or the *flexible* queue (pending work, and work whose node is hot,
dead or long busy), which any node with credit may take.
:meth:`Dispatcher.pump` runs whenever credit or the cluster view changes and
resolves as many futures as credit allows — no task polls, and a pump looks
only at nodes that may have credit, so its cost grows little with the
cluster under load (``docs/performance.md#the-balancers-dispatcher``). It is
work-conserving: a task waits for its placed node only while no other node
could start it — a node with spare credit takes work held for a node without
(oldest first), so under moderate load binpack's one busy node does not
queue work while another node idles.

The flexible queue is offered to open nodes in two passes (as the
simulator's balancer, ``boson/simulation/policies.py``): first each
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

A result this balancer misses (its connection failing over while the
result was on its way) would hold its task's credit for ever. So credit is
reconciled with the node's own word: a task dispatched to a node whose
snapshots have shown it running nothing ever since (or since some time
after the dispatch) for ``missed_result_after_s`` on end can no longer be
queued, running or waiting out its retry delays there (the bound exceeds
the delays of the default retry policy), so the credit of a result that
never came is given back. A task retried more often than that policy, on a
node that looks idle throughout, may have its credit back early.

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
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from boson_services.balancer.head import HeadBook
from boson_shared.contract.messages import ClusterSnapshot, ResourceVector
from boson_shared.scheduling.amounts import grid_columns
from boson_shared.scheduling.balancing import (
    AGE_LIMIT_S,
    dispatch_order,
    fits_cleanly,
    imbalance,
    power_of_two_choices,
)
from boson_shared.scheduling.devices import (
    DeviceBook,
    indices_of,
    mask_of,
    parse_models,
    to_milli,
)
from boson_shared.scheduling.head_reservation import RESERVATION_LAPSE_S, HeadReservation
from boson_shared.scheduling.scores import bottleneck
from boson_shared.scheduling.table import FIT_EPSILON
from boson_shared.scheduling.typical_demand import LongRunDemand

FLEXIBLE_LOOKAHEAD = 64
"""How far past a stuck head the flexible queue looks (big tasks do not block small ones)."""
FLEXIBLE_WINDOW = 256
"""Held tasks at the front of the flexible queue one pump orders and may dispatch
(the simulator's balancer window, ``boson.simulation.policies.DEFAULT_WINDOW``)."""

RECENT_DISPATCH_S = 5.0
"""Dispatches this recent may be missing from a snapshot (heartbeat, then
snapshot interval): a snapshot never shows a node holding less than them."""

MISSED_RESULT_AFTER_S = 60.0
"""How long a node must be seen idle before the credit of results missed there
comes back: longer than the longest retry delay plus a snapshot's lag."""

TASK_TIME_RISE = 0.5
"""Weight of a longer task time in a node's running mean: the window shrinks fast."""
TASK_TIME_DECAY = 0.1
"""Weight of a shorter one: the window widens slowly again."""


class HeldTooLongError(Exception):
    """A held task's future fails with this when :meth:`Dispatcher.overdue` says
    it waited too long: its handler parks it."""


class TaskCancelledHere(Exception):  # noqa: N818 - an outcome, not a fault
    """A held task was cancelled before any node took it."""


class TaskPreemptedHere(Exception):  # noqa: N818 - an outcome, not a fault
    """A held task lost its admission before any node took it: it waits in
    its tenant's line again (:mod:`boson_services.balancer.tenancy`)."""


@dataclass
class NodeView:
    node_id: str
    alive: bool
    slots: int
    capacity: np.ndarray
    allocated: np.ndarray
    """As of the last snapshot, plus what we dispatched since, minus what came back."""
    measured: float
    in_flight: set[str] = field(default_factory=set)
    task_s: float | None = None
    """Running mean of the wall time its results report (None: none reported yet)."""
    window: int = 0
    """Tasks it may hold at once (:meth:`Dispatcher.resize` keeps it current)."""
    on_probation: bool = False
    """Back after failing (the monitor's ``NodeState.on_probation``): no new work."""
    gpus: DeviceBook = field(default_factory=lambda: DeviceBook([], [], []))
    """Its GPU devices: the last snapshot's, plus what we dispatched since."""
    idle_since: float | None = None
    """Since when its snapshots show it running nothing (None: running something)."""

    @property
    def takes_work(self) -> bool:
        """Alive and not on probation: new work may go here."""
        return self.alive and not self.on_probation


@dataclass
class HeldTask:
    task_id: str
    demand: np.ndarray
    target: str | None
    since: float
    future: asyncio.Future[str]
    job: object = None
    """What the task belongs to, for smallest-pending-job-first (``None``: its own job)."""
    urgent: bool = False
    """A dead node's work: offered capacity before anything else."""
    handler: str | None = None
    """Its handler, whose recent run times say how long it is expected to run."""
    timeout_s: float | None = None
    """The longest it may run: its expected run time before its handler reports any."""
    models: frozenset[str] | None = None
    """The GPU models its devices must be (``None``: any)."""
    prefer: int = 0
    """The devices the scheduler picked on ``target`` (a mask), kept if still free there."""


class Dispatcher:
    """Held work, node credit and the picking rules (see the module docstring)."""

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
        """Tasks whose credit came back without their result (see the module docstring)."""
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.clock = clock
        self.nodes: dict[str, NodeView] = {}
        self.where: dict[str, str] = {}
        # What each dispatched task holds on its node, given back by its result.
        self._demand_of: dict[str, np.ndarray] = {}
        """Task id → node it was dispatched to, until its result arrives."""
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
        self._by_age: deque[HeldTask] = deque()
        """Every hold in the order made (oldest first), for :meth:`overdue`:
        one deque, not a timer per held task."""
        self.dispatched_total = 0
        self.pumps = 0
        self.retargeted_total = 0
        self.stolen_total = 0
        """Tasks a node with spare credit took from a node without (see :meth:`_steal`)."""
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
        next :meth:`hold`, which so need not walk the open nodes again."""
        self._needs: dict[bytes, tuple[np.ndarray, int]] = {}
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
        return node.alive and not self.is_hot(node) and self.credit(node.node_id) > 0

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
            grid_columns(np.asarray(demand.as_tuple(), dtype=np.float64)),
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
        self._by_age.append(held)
        if len(self._by_age) > 2 * len(self.held) + 1024:
            # Behind one long-held task the dispatched ones pile up: drop them.
            self._by_age = deque(h for h in self._by_age if not h.future.done())
        node = self.nodes.get(target) if target is not None else None
        if admitted and self._start_elsewhere(held, node, only_room):
            return future
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
        while ages and (ages[0].future.done() or ages[0].since <= deadline):
            held = ages.popleft()
            if held.future.done():
                continue
            if self.held.get(held.task_id) is held:
                del self.held[held.task_id]
            self.head.released(held.task_id)
            held.future.set_exception(HeldTooLongError(f"held {max_age_s:g}s"))
            count += 1
        return count

    def release(self, task_id: str) -> None:
        """Forget a held task (parked, or its handler was cancelled)."""
        held = self.held.pop(task_id, None)
        if held is not None and not held.future.done():
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
        if held is None or held.future.done():
            return False
        self.head.released(task_id)
        held.future.set_exception(outcome)
        return True

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
        # to take work leave the spare set, as in _open_nodes. The test is
        # accepts() written out (alive, not hot, credit left): every admission
        # pass comes here, and the calls cost more than the test.
        nodes = self.nodes
        for node_id in self._spare:
            node = nodes.get(node_id)
            if (
                node is None
                or not node.alive
                or node.window <= len(node.in_flight)
                or not node.takes_work
                or self.is_hot(node)
            ):
                closed.append(node_id)
            elif bool((node.capacity - node.allocated >= need).all()) and (
                milli == 0 or node.gpus.fits(milli, models)
            ):
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

    def _need(self, raw: bytes, demand: np.ndarray) -> tuple[np.ndarray, int]:
        """The fit rule's ``need`` (read-only) and GPU milli of a demand (``raw``: its bytes)."""
        known = self._needs.get(raw)
        if known is None:
            need = demand - FIT_EPSILON
            need[2] = 0.0
            need.flags.writeable = False
            if len(self._needs) >= 1024:
                self._needs.clear()
            known = self._needs[raw] = (need, to_milli(demand[2]))
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

    # -- cluster view ------------------------------------------------------

    def on_snapshot(self, snapshot: ClusterSnapshot) -> list[str]:
        """Apply the monitor's view; returns nodes that just went down."""
        self.room_changed += 1
        self._only_room = None
        went_down: list[str] = []
        for state in snapshot.nodes:
            node = self.nodes.get(state.node_id)
            # CPU and memory on the exact grid (boson_shared/scheduling/amounts.py):
            # what is dispatched and returned between snapshots adds up exactly.
            capacity = grid_columns(np.asarray(state.capacity.as_tuple(), dtype=np.float64))
            allocated = grid_columns(np.asarray(state.allocated.as_tuple(), dtype=np.float64))
            measured = max(state.measured_cpu, state.measured_memory)
            gpus = DeviceBook.of(
                state.capacity.gpu, [(g.model, g.allocated_milli) for g in state.gpus]
            )
            if node is None:
                node = NodeView(
                    state.node_id, state.alive, state.slots, capacity, allocated, measured
                )
                node.on_probation = state.on_probation
                node.gpus = gpus
                self.nodes[state.node_id] = node
                self.head.row(state.node_id)
            else:
                if node.alive and not state.alive:
                    went_down.append(state.node_id)
                node.alive = state.alive
                node.on_probation = state.on_probation
                node.slots = state.slots
                node.capacity = capacity
                # The snapshot may not show yet what was dispatched lately:
                # the node holds at least that.
                node.allocated = np.maximum(allocated, self._recent_demand(node))
                node.gpus = gpus
                node.measured = measured
            if state.running > 0:
                node.idle_since = None
            elif node.idle_since is None:
                node.idle_since = self.clock()
            self.resize(node)
        self._any_cool = any(
            n.alive and n.measured < self.hot_threshold for n in self.nodes.values()
        )
        self._spare.update((node_id, None) for node_id, n in self.nodes.items() if n.alive)
        for node_id in went_down:
            self._forget_node_work(node_id)
        self._give_back_missed()
        if self.head.reservation is not None:
            self.head.check_nodes({node_id: n.takes_work for node_id, n in self.nodes.items()})
        self._move_off_unusable_nodes()
        self.rebalance()
        self.pump()
        return went_down

    def _recent_demand(self, node: NodeView) -> np.ndarray:
        """Demand of tasks dispatched to ``node`` in the last ``RECENT_DISPATCH_S``.

        Only recent ones: older ones the node's heartbeats report themselves,
        and a result this balancer missed (its connection failing over) must
        not hold the node's room for ever.
        """
        since = self.clock() - RECENT_DISPATCH_S
        total = np.zeros_like(node.capacity)
        for task_id in node.in_flight:
            demand = self._demand_of.get(task_id)
            if demand is not None and self._sent_at.get(task_id, since) > since:
                total = total + demand
        return total

    def _give_back_missed(self) -> None:
        """Credit of results missed on nodes idle long enough (see the module docstring)."""
        now = self.clock()
        for node in self.nodes.values():
            since = node.idle_since
            if since is None or now - since < self.missed_result_after_s:
                continue
            missed = [
                t
                for t in node.in_flight
                if now - max(since, self._sent_at.get(t, now)) >= self.missed_result_after_s
            ]
            for task_id in missed:
                self.complete(task_id, pump=False)
            self.missed_results_total += len(missed)

    def _forget_node_work(self, node_id: str) -> None:
        # Its queued and unacked work is drained back to us and re-held.
        node = self.nodes[node_id]
        for task_id in node.in_flight:
            self.where.pop(task_id, None)
            self._demand_of.pop(task_id, None)
            self.head.forget(task_id)
            self._devices_of.pop(task_id, None)
            self._sent_at.pop(task_id, None)
        node.in_flight.clear()

    def _move_off_unusable_nodes(self) -> None:
        for node_id, queue in self.by_node.items():
            node = self.nodes.get(node_id)
            if queue and (node is None or not node.takes_work or self.is_hot(node)):
                self._retarget(queue, len(queue))

    def rebalance(self) -> int:
        """When measured load is uneven, send hot nodes' held work to cold ones."""
        alive = [n for n in self.nodes.values() if n.alive]
        if len(alive) < 2:
            return 0
        loads = np.array([n.measured for n in alive])
        if imbalance(loads) < self.imbalance_threshold:
            return 0
        mean = float(loads.mean())
        moved = 0
        for node in alive:
            queue = self.by_node.get(node.node_id)
            if queue and node.measured > mean:
                moved += self._retarget(queue, len(queue))
        return moved

    def sweep(self) -> int:
        """Work that waited too long for a busy node may go to any node.

        (Spare credit takes such work at once, see :meth:`_steal`; what is
        left here waits because no node could start it, and joins the
        flexible queue's order instead of its placed node's.)"""
        deadline = self.clock() - self.retarget_after_s
        moved = 0
        for queue in self.by_node.values():
            count = 0
            for held in queue:
                if held.since > deadline:
                    break
                count += 1
            moved += self._retarget(queue, count)
        if moved:
            self.pump()
        return moved

    def _retarget(self, queue: deque[HeldTask], count: int) -> int:
        moved = 0
        for _ in range(count):
            held = queue.popleft()
            if not held.future.done():
                self.flexible.append(held)
                moved += 1
        self.retargeted_total += moved
        return moved

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

    @staticmethod
    def _fits(node: NodeView, demand: np.ndarray) -> bool:
        return bool((node.capacity - node.allocated >= demand - FIT_EPSILON).all())

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
        # ndarray.all(), not np.all(): the wrapper costs more than the test
        # on three numbers.
        candidates = [
            node
            for node in open_nodes
            if bool((node.capacity - node.allocated >= need).all())
            and (milli == 0 or node.gpus.fits(milli, models))
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
        self.dispatched_total += 1
        held.future.set_result(node.node_id)

    # -- views -------------------------------------------------------------

    def devices_of(self, task_id: str) -> tuple[int, ...]:
        """The GPU devices a dispatched task goes to on its node (none: no GPU part)."""
        return indices_of(self._devices_of.get(task_id, 0))

    def pending(self) -> int:
        """Held work with no usable node (the backlog KEDA scales on)."""
        return sum(1 for held in self.flexible if not held.future.done())

    def alive_nodes(self) -> Iterable[str]:
        return (node_id for node_id, node in self.nodes.items() if node.alive)


__all__ = [
    "Dispatcher",
    "HeldTask",
    "HeldTooLongError",
    "NodeView",
    "TaskCancelledHere",
    "TaskPreemptedHere",
]
