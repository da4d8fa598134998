"""What "with" and "without rebalancing" mean in the simulator: the two backlog drainers.

In the simulator a placed instance starts at once, so there is no
not-yet-started work sitting on a node for the balancer to move. What the
balancer does own is the backlog — work placed as pending because it fit
nowhere (docs/design.md#placement, #balancing). So:

* **without rebalancing** (:class:`HeadOfLine`) — the scheduler alone: each
  time capacity frees, the backlog is retried from its head through the
  placer, and stops at the first entry that still does not fit (FIFO, with
  head-of-line blocking). Dead nodes' work is re-placed through the placer.
* **with rebalancing** (:class:`Balancer`) — the balancer holds the backlog
  and dispatches by node credit: each time capacity frees it walks a bounded
  window of the backlog and dispatches every entry that now fits somewhere
  (so one large entry does not block small ones behind it), through the same
  placer so the strategy still decides the node. The window is taken in
  :func:`~boson_shared.scheduling.balancing.dispatch_order`: dead nodes' work,
  then work older than :data:`~boson_shared.scheduling.balancing.AGE_LIMIT_S`,
  then the smallest pending job first; and walked twice, clean fits first (see
  :class:`Balancer`). Dead nodes' work goes through the balancer's recovery
  planner.

There is no rebalancing of *running* work: instances start when placed, and
the balancer service only moves held work that has not started, of which the
simulator has none on any node.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from boson.simulation.engine import Simulation
from boson.simulation.instances import Pending
from boson.simulation.table import FloatArray
from boson_shared.scheduling.balancing import (
    AGE_LIMIT_S,
    QueuedTask,
    dispatch_order,
    fits_cleanly,
    plan_recovery,
)
from boson_shared.scheduling.devices import mask_of
from boson_shared.scheduling.fgd_scoring import bottleneck
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.table import FIT_EPSILON
from boson_shared.scheduling.typical_demand import LongRunDemand

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
    masks = [mask_of(r.devices) for r in plan if r.to_node is not None]
    if placed:
        gpu = np.asarray(masks, np.int64) if demand[2] > 0 else None
        sim.start(task, np.asarray(placed, np.int64), replaced=True, masks=gpu)
    waiting = sum(r.status == "waiting" for r in plan)
    never = sum(r.status == "never" for r in plan)
    sim.recorder.never += never
    sim.recorder.never_fits += never
    if waiting:
        sim.backlog.appendleft(Pending(task, waiting, True, sim.now))


def _start_heads(sim: Simulation, entries: Sequence[Pending]) -> int:
    """Start entries in waiting order while they fit whole; the index of the first that
    does not (it is the head and keeps its place), ``len(entries)`` if all started.

    Each head takes any room: a reservation made for another entry no longer binds it.
    """
    for k, entry in enumerate(entries):
        res = sim.reservation
        if res is not None and res.key is not entry:
            sim.reservation = None
        entry.count -= sim.try_place(entry.task, entry.count, entry.replaced, entry)
        if entry.count:
            return k
    return len(entries)


def _backfill(sim: Simulation, entries: Sequence[Pending]) -> None:
    """Offer the rest of a window, in order, whatever the head's reservation leaves them."""
    table = sim.table
    alive = table.alive
    if not alive.any():
        return
    # Free room only shrinks during the walk: an entry larger than the
    # largest free amount at its start fits nowhere, without asking the placer.
    b0, b1, b2 = ((table.capacity - table.allocated)[alive].max(axis=0) + FIT_EPSILON).tolist()
    for entry in entries:
        w0, w1, w2 = sim.demands[entry.task]
        if entry.count and w0 <= b0 and w1 <= b1 and w2 <= b2:
            entry.count -= sim.try_place(entry.task, entry.count, entry.replaced, entry)


class HeadOfLine:
    """Without rebalancing: retry the backlog from its head; stop at the first miss.

    With a head reservation (Boson's policies) the head that does not fit
    holds it, and the entries behind it (a window of them) backfill around
    it, in queue order: EASY backfill.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window

    def observe(self, demand: FloatArray, count: int) -> None:
        """A plain queue learns nothing from arrivals."""

    def drain(self, sim: Simulation) -> None:
        backlog = sim.backlog
        if not sim.reserve:
            while backlog:
                head = backlog[0]
                head.count -= sim.try_place(head.task, head.count, head.replaced)
                if head.count:
                    return
                backlog.popleft()
            return
        window = list(itertools.islice(backlog, self.window))
        k = _start_heads(sim, window)
        if k < len(window):
            sim.update_reservation()
            _backfill(sim, window[k + 1 :])
        if any(not e.count for e in window):
            kept = [e for e in backlog if e.count]
            backlog.clear()
            backlog.extend(kept)

    def head(self, sim: Simulation) -> Pending | None:
        return sim.backlog[0] if sim.backlog else None

    def recover(self, sim: Simulation, task: int, count: int) -> None:
        _recover(sim, task, count)


class _Misses:
    """Demands that found no room in this drain.

    Free capacity only shrinks within a drain, so a demand at least as large
    on every dimension finds none either and skips the placer's vectorised
    fit count. In an overloaded cluster almost every entry is such a miss.
    Kept minimal (none covers another), so the list stays short.
    """

    def __init__(self) -> None:
        self._demands: list[tuple[float, float, float]] = []

    def covers(self, want: tuple[float, float, float]) -> bool:
        w0, w1, w2 = want
        return any(w0 >= m0 and w1 >= m1 and w2 >= m2 for m0, m1, m2 in self._demands)

    def add(self, want: tuple[float, float, float]) -> None:
        w0, w1, w2 = want
        kept = [m for m in self._demands if not (m[0] >= w0 and m[1] >= w1 and m[2] >= w2)]
        self._demands = [*kept, want]


class Balancer:
    """With rebalancing: dispatch whatever fits within a bounded backlog window.

    Two passes over the window, as the balancer service's flexible queue
    (``boson_services/balancer/dispatch_pump.py``): first every entry may take only
    nodes it fits cleanly (:func:`~boson_shared.scheduling.balancing.fits_cleanly`,
    against the typical demand learnt from every arrival) — except a dead
    node's work and work past the age limit, which take any room; then
    whatever fits anywhere. So in a full cluster the smallest pending job
    does not split a freed hole that a larger waiting task fills exactly.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, age_limit: float = AGE_LIMIT_S) -> None:
        self.window = window
        self.age_limit = age_limit
        self.typical = LongRunDemand()
        self._head: Pending | None = None

    def _order(self, sim: Simulation, entries: Sequence[Pending]) -> list[int]:
        job = sim.workload.job
        res = sim.reservation
        return dispatch_order(
            [int(job[e.task]) for e in entries],
            [e.count for e in entries],
            [sim.now - e.since for e in entries],
            # The reservation's holder keeps its place at the head (as a dead
            # node's work does): a promise later arrivals cannot take back.
            [e.replaced or (res is not None and res.key is e) for e in entries],
            self.age_limit,
        )[: self.window]

    def head(self, sim: Simulation) -> Pending | None:
        """The head as the last drain found it, while it waits; else the first in order."""
        if self._head is not None and self._head.count:
            return self._head
        entries = list(sim.backlog)
        order = self._order(sim, entries)
        self._head = entries[order[0]] if order else None
        return self._head

    def observe(self, demand: FloatArray, count: int) -> None:
        self.typical.observe(demand, count)

    def drain(self, sim: Simulation) -> None:
        table = sim.table
        alive = table.alive
        if not sim.backlog or not alive.any():
            return
        self.typical.refresh()
        entries = list(sim.backlog)
        # One order for both passes, as the service's pump.
        order = self._order(sim, entries)
        misses = _Misses()
        if np.any(self.typical.points > 0):
            self._offer(sim, entries, order, misses, clean=True)
        self._offer(sim, entries, order, misses, clean=False)
        if sim.reserve:
            # EASY, as the service's pump: the first in order still waiting
            # is the head and holds the reservation later placements backfill around.
            self._head = next((entries[i] for i in order if entries[i].count), None)
            sim.update_reservation()
        sim.backlog.clear()
        sim.backlog.extend(e for e in entries if e.count)

    def _offer(
        self,
        sim: Simulation,
        entries: list[Pending],
        order: list[int],
        misses: _Misses,
        *,
        clean: bool,
    ) -> None:
        """One pass over the window; ``clean``: the clean-fit pass."""
        table = sim.table
        alive = table.alive
        typical = self.typical.points
        b = bottleneck(table.capacity, typical) if clean else 0
        free = table.capacity - table.allocated
        # A cheap necessary condition per entry: every dimension fits under
        # the largest free amount somewhere at the start of the pass (free
        # room only shrinks within it). Entries failing it are skipped
        # without touching the placer — in a full cluster, almost all.
        b0, b1, b2 = (free[alive].max(axis=0) + FIT_EPSILON).tolist()
        stale = False
        for k in order:
            entry = entries[k]
            if not entry.count:
                continue
            want = w0, w1, w2 = sim.demands[entry.task]
            if w0 > b0 or w1 > b1 or w2 > b2 or misses.covers(want):
                continue
            count = entry.count
            res = sim.reservation
            if clean and not (
                entry.replaced
                or sim.now - entry.since >= self.age_limit
                or (res is not None and res.key is entry)
            ):
                # As many instances as there are nodes one of them fits
                # cleanly; the placer still picks the nodes, and its own
                # guard favours those. (The service offers its held tasks
                # one at a time, each to the nodes it fits cleanly.) A
                # dead node's work, work past the age limit and the holder
                # of the head reservation may not wait any longer: they take
                # any room in this pass too.
                if stale:
                    free = table.capacity - table.allocated
                    stale = False
                demand = sim.workload.demand[entry.task]
                rows = np.flatnonzero(table.feasible(demand))
                if not rows.size:
                    misses.add(want)
                    continue
                count = min(count, int(fits_cleanly(free[rows], demand, typical, b).sum()))
                if not count:
                    continue
            placed = sim.try_place(entry.task, count, entry.replaced, entry)
            if not placed:
                misses.add(want)
                continue
            entry.count -= placed
            stale = True

    def recover(self, sim: Simulation, task: int, count: int) -> None:
        _recover(sim, task, count)


__all__ = ["DEFAULT_WINDOW", "Balancer", "HeadOfLine"]
