"""What "with" and "without rebalancing" mean in the simulator, and the roster.

In the simulator a placed instance starts at once, so there is no
not-yet-started work sitting on a node for the balancer to move. What the
balancer does own is the backlog — work placed as pending because it fit
nowhere (DESIGN §3.1–3.3). So:

* **without rebalancing** (:class:`HeadOfLine`) — the scheduler alone: each
  time capacity frees, the backlog is retried from its head through the
  placer, and stops at the first entry that still does not fit (FIFO, with
  head-of-line blocking). Dead nodes' work is re-placed through the placer.
* **with rebalancing** (:class:`Balancer`) — the balancer holds the backlog
  and dispatches by node credit: each time capacity frees it walks a bounded
  window of the backlog and dispatches every entry that now fits somewhere
  (so one large entry does not block small ones behind it), through the same
  placer so the strategy still decides the node. The window is taken in
  :func:`~shared.scheduling.balancing.dispatch_order`: dead nodes' work,
  then work older than :data:`AGE_LIMIT_S`, then the smallest pending job
  first; and walked twice, clean fits first (see :class:`Balancer`). Dead
  nodes' work goes through the balancer's recovery planner.

Baselines (random, round-robin, first-fit, k8s-default) run with
:class:`HeadOfLine`, the behaviour of a plain scheduler queue; any baseline
name with ``+rebalance`` runs it behind the balancer instead, to separate what
the scorer does from what the backlog policy does (kube-scheduler itself
retries every unschedulable pod on cluster changes, which is closer to the
balancer's window than to a strict head of line).

There is no rebalancing of *running* work: instances start when placed, and
:func:`~shared.scheduling.balancing.plan_rebalance` only moves work that has
not started, of which the simulator has none on any node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shared.scheduling.balancing import (
    AGE_LIMIT_S,
    QueuedTask,
    dispatch_order,
    fits_cleanly,
    plan_recovery,
)
from shared.scheduling.placement import Placer
from shared.scheduling.remnant import LongRunDemand
from shared.scheduling.scores import bottleneck
from shared.scheduling.sim_baselines import BASELINES
from shared.scheduling.sim_metrics import Metrics, Recorder
from shared.scheduling.sim_table import FIT_EPSILON, BatchPlacer, FloatArray
from shared.scheduling.simulation import (
    DEFAULT_SAMPLE_STEP,
    Dispatcher,
    Pending,
    Simulation,
    simulate,
)
from shared.scheduling.table import NodeTable
from shared.scheduling.traces import Cluster, NodeEvents, Workload

BOSON_STRATEGIES = ("binpack", "spread", "balanced", "tetris", "remnant", "binpack-fgd")
REBALANCE_SUFFIX = "+rebalance"
DEFAULT_WINDOW = 256
"""Backlog entries the balancer looks at per capacity change: bounded work per event."""


def _replace(sim: Simulation, task: int, count: int) -> None:
    """Re-place a dead node's instances through the placer; the rest wait first in line."""
    left = count - sim.try_place(task, count, replaced=True)
    if left:
        sim.backlog.appendleft(Pending(task, left, True, sim.now))


def _recover(sim: Simulation, task: int, count: int) -> None:
    """Re-place a dead node's instances through the balancing library's recovery planner."""
    placer = sim.placer
    if not isinstance(placer, Placer):  # a baseline: no recovery planner of its own
        _replace(sim, task, count)
        return
    d = sim.workload.demand[task]
    demand = (float(d[0]), float(d[1]), float(d[2]))
    queued = [QueuedTask(f"{task}/{k}", sim.dead_node_id, demand) for k in range(count)]
    plan = plan_recovery(queued, sim.table, placer)
    placed = [sim.table.index_of(r.to_node) for r in plan if r.to_node is not None]
    if placed:
        sim.start(task, np.asarray(placed, np.int64), replaced=True)
    waiting = sum(r.status == "waiting" for r in plan)
    sim.recorder.never += sum(r.status == "never" for r in plan)
    if waiting:
        sim.backlog.appendleft(Pending(task, waiting, True, sim.now))


class HeadOfLine:
    """Without rebalancing: retry the backlog from its head; stop at the first miss."""

    def observe(self, demand: FloatArray, count: int) -> None:
        """A plain queue learns nothing from arrivals."""

    def drain(self, sim: Simulation) -> None:
        backlog = sim.backlog
        while backlog:
            head = backlog[0]
            head.count -= sim.try_place(head.task, head.count, head.replaced)
            if head.count:
                return
            backlog.popleft()

    def recover(self, sim: Simulation, task: int, count: int) -> None:
        _recover(sim, task, count)


class Balancer:
    """With rebalancing: dispatch whatever fits within a bounded backlog window.

    Two passes over the window, as the balancer service's flexible queue
    (``services/balancer/dispatcher.py``): first every entry may take only
    nodes it fits cleanly (:func:`~shared.scheduling.balancing.fits_cleanly`,
    against the typical demand learnt from every arrival) — except a dead
    node's work and work past the age limit, which take any room; then
    whatever fits anywhere. So in a full cluster the smallest pending job
    does not split a freed hole that a larger waiting task fills exactly.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, age_limit: float = AGE_LIMIT_S) -> None:
        self.window = window
        self.age_limit = age_limit
        self.typical = LongRunDemand()

    def observe(self, demand: FloatArray, count: int) -> None:
        self.typical.observe(demand, count)

    def _order(self, sim: Simulation, entries: list[Pending]) -> list[int]:
        job = sim.workload.job
        return dispatch_order(
            [int(job[e.task]) for e in entries],
            [e.count for e in entries],
            [sim.now - e.since for e in entries],
            [e.replaced for e in entries],
            self.age_limit,
        )[: self.window]

    def drain(self, sim: Simulation) -> None:
        self.typical.refresh()
        self._clean_pass(sim)
        self._any_pass(sim)

    def _clean_pass(self, sim: Simulation) -> None:
        typical = self.typical.value
        table = sim.table
        alive = table.alive
        if not sim.backlog or not np.any(typical > 0) or not alive.any():
            return
        b = bottleneck(table.capacity, typical)
        free = table.capacity - table.allocated
        # As in the second pass: an entry larger on some dimension than any
        # node's free room fits nowhere — in a full cluster, almost all.
        best = free[alive].max(axis=0) + FIT_EPSILON
        entries = list(sim.backlog)
        for k in self._order(sim, entries):
            entry = entries[k]
            demand = sim.workload.demand[entry.task]
            if not bool(np.all(demand <= best)):
                continue
            if entry.replaced or sim.now - entry.since >= self.age_limit:
                want = entry.count  # may not wait any longer: any room
            else:
                # As many instances as there are nodes one of them fits
                # cleanly; the placer still picks the nodes, and its own
                # guard favours those. (The service offers its held tasks
                # one at a time, each to the nodes it fits cleanly.)
                clean = alive & fits_cleanly(free, demand, typical, b)
                want = min(entry.count, int(clean.sum()))
            placed = sim.try_place(entry.task, want, entry.replaced) if want else 0
            if placed:
                entry.count -= placed
                free = table.capacity - table.allocated
                best = free[alive].max(axis=0) + FIT_EPSILON
        sim.backlog.clear()
        sim.backlog.extend(e for e in entries if e.count)

    def _any_pass(self, sim: Simulation) -> None:
        table = sim.table
        alive = table.alive
        free = (table.capacity - table.allocated)[alive]
        if free.size == 0 or not sim.backlog:
            return
        # A cheap necessary condition per entry: every dimension fits under
        # the largest free amount somewhere. Entries failing it are skipped
        # without touching the placer.
        best = free.max(axis=0) + FIT_EPSILON
        entries = list(sim.backlog)
        order = self._order(sim, entries)
        tasks = np.fromiter((entries[k].task for k in order), np.int64, len(order))
        roomy = np.all(sim.workload.demand[tasks] <= best, axis=1).tolist()
        wanted = sim.demands
        # Demands that found no room in this drain: free capacity only shrinks
        # within a drain, so a demand at least as large on every dimension
        # finds none either and skips the placer's vectorised fit count. In an
        # overloaded cluster almost every entry is such a miss. Kept minimal
        # (none covers another), so the list stays short.
        misses: list[tuple[float, float, float]] = []
        for k, ok in zip(order, roomy, strict=True):
            if not ok:
                continue
            entry = entries[k]
            w0, w1, w2 = want = wanted[entry.task]
            if any(w0 >= m0 and w1 >= m1 and w2 >= m2 for m0, m1, m2 in misses):
                continue
            placed = sim.try_place(entry.task, entry.count, entry.replaced)
            entry.count -= placed
            if not placed:
                misses = [m for m in misses if not (m[0] >= w0 and m[1] >= w1 and m[2] >= w2)]
                misses.append(want)
        sim.backlog.clear()
        sim.backlog.extend(e for e in entries if e.count)

    def recover(self, sim: Simulation, task: int, count: int) -> None:
        _recover(sim, task, count)


@dataclass(frozen=True)
class Policy:
    """A named placer factory with its dispatcher."""

    name: str
    placer: Callable[[NodeTable], BatchPlacer]
    dispatcher: Callable[[], Dispatcher]
    baseline: bool


def _boson(strategy: str) -> Callable[[NodeTable], BatchPlacer]:
    def factory(table: NodeTable) -> BatchPlacer:
        return Placer(table, strategy)  # type: ignore[arg-type]

    return factory


def policy_names() -> list[str]:
    """Every policy a full run compares, Boson's first."""
    boson = [s + suffix for s in BOSON_STRATEGIES for suffix in ("", REBALANCE_SUFFIX)]
    # k8s-default behind the balancer too: it separates the scorer's effect
    # from the backlog policy's (see the module docstring).
    return [*boson, *BASELINES, "k8s-default" + REBALANCE_SUFFIX]


def make_policy(name: str) -> Policy:
    """The policy called ``name`` (see :func:`policy_names`); ``KeyError`` if none."""
    strategy, _, rest = name.partition("+")
    if rest not in ("", REBALANCE_SUFFIX[1:]):
        raise KeyError(name)
    dispatcher: Callable[[], Dispatcher] = Balancer if rest else HeadOfLine
    if strategy in BASELINES:
        return Policy(name, BASELINES[strategy], dispatcher, baseline=True)
    if strategy not in BOSON_STRATEGIES:
        raise KeyError(name)
    return Policy(name, _boson(strategy), dispatcher, baseline=False)


def compare(
    names: Sequence[str],
    workload: Workload,
    cluster: Cluster,
    events: NodeEvents,
    sample_step: float = DEFAULT_SAMPLE_STEP,
) -> list[tuple[Metrics, Recorder]]:
    """Replay the same trace under each named policy, in order."""
    results = []
    for name in names:
        policy = make_policy(name)
        results.append(
            simulate(
                name, workload, cluster, events, policy.placer, policy.dispatcher(), sample_step
            )
        )
    return results


__all__ = [
    "AGE_LIMIT_S",
    "BOSON_STRATEGIES",
    "DEFAULT_WINDOW",
    "REBALANCE_SUFFIX",
    "Balancer",
    "HeadOfLine",
    "Policy",
    "compare",
    "make_policy",
    "policy_names",
]
