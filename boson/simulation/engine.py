"""A discrete-event simulator that replays a trace through Boson's own placement.

Simulated time, no broker. The engine owns a real
:class:`~boson_shared.scheduling.table.NodeTable` and calls a placer's
``place_batch`` — Boson's :class:`~boson_shared.scheduling.placement.Placer`, or a
baseline plug-in — exactly as the scheduler service does; what it adds is
time: arrivals, completions and node events.

The model (stated once, used everywhere):

* An instance holds its task's per-instance request from the moment it is
  placed for the task's whole duration, then releases it. (On the Alibaba
  trace the duration includes time the real cluster made it wait, so the
  model is pessimistic.)
* A task's instances are placed as one batch when it arrives, each on its
  own node; those that fit nowhere join the backlog, a FIFO of
  (task, instances waiting) entries. A task no node could ever hold is
  counted as never placeable.
* When capacity frees (completions, a node coming back) the backlog is
  offered it through a :class:`BacklogDrainer` — the only thing that differs
  between "with" and "without rebalancing" (see :mod:`boson.simulation.policies`).
* A node going down kills its running instances; they re-enter the front of
  the backlog, restart from scratch with their full duration, and are counted
  as re-placed. The node takes no work until it comes back — and, under
  Boson's policies, until its probation after that ends
  (:mod:`~boson_shared.scheduling.probation`; the baselines have none).
* Events at one instant are handled completions → node events → probation
  ends → backlog → arrivals, so freed capacity goes to older work first.
* Under Boson's policies the entry at the head of the waiting order that
  does not fit gets a head reservation
  (:mod:`~boson_shared.scheduling.head_reservation`) for its next instance:
  the node where known durations say it will fit soonest. Every other placement — later backlog
  entries and new arrivals alike — backfills around it: on a reserved node
  only what ends by the reservation's start or fits in the room left beside
  it then. The baselines reserve nothing, as their schedulers do.

:func:`place_instances` is the pure step shared by every path: the same
table state, placer and request give the same placements, which is what lets
a test hold the running scheduler to the simulator.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from boson.simulation.metrics import (
    Metrics,
    Recorder,
    gpu_fragmentation,
    gpu_points,
    summarise,
)
from boson.simulation.table import BatchPlacer, BatchResult, FloatArray, IntArray, fit_counts
from boson.simulation.traces import Cluster, NodeEvents, Workload
from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.head_reservation import (
    RESERVATION_LAPSE_S,
    DeviceRoom,
    HeadReservation,
    Release,
    plan_reservation,
)
from boson_shared.scheduling.horizon import NodeHorizon
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.probation import Probation
from boson_shared.scheduling.table import FIT_EPSILON, NodeTable

DEFAULT_SAMPLE_STEP = 10.0
"""Seconds between samples of the time-averaged metrics."""


@dataclass
class Pending:
    """Instances of one task waiting in the backlog."""

    task: int
    count: int
    replaced: bool
    since: float


@dataclass
class _Group:
    task: int
    nodes: IntArray
    end: float
    masks: IntArray | None = None
    """Per instance, the GPU devices it holds (``None``: the task has no GPU part)."""


def place_instances(
    placer: BatchPlacer, table: NodeTable, demand: FloatArray, count: int
) -> IntArray:
    """Place up to ``count`` identical instances in one batch; their nodes.

    Asks the placer only for as many as can fit (exact for identical
    instances), so a saturated cluster costs one vectorised count, not a
    batch of refusals. The instances not returned are waiting.
    """
    return place_instances_on_devices(placer, table, demand, count)[0]


def place_instances_on_devices(
    placer: BatchPlacer,
    table: NodeTable,
    demand: FloatArray,
    count: int,
    ends: tuple[float, float, float] | None = None,
) -> tuple[IntArray, IntArray | None]:
    """:func:`place_instances`, with each instance's GPU devices (a bit mask; ``None``: none).

    ``ends``: ``(now, expected end, waiting since)``, for a placer that places end-aware.
    """
    fit = min(count, int(fit_counts(table, demand).sum()))
    if fit == 0:
        return np.zeros(0, np.int64), None
    batch = np.repeat(demand[None, :], fit, axis=0)
    if ends is not None and isinstance(placer, Placer) and placer.horizon is not None:
        result: BatchResult = placer.place_batch(batch, ends=ends)
    else:
        result = placer.place_batch(batch)
    indices = np.asarray(result.indices, np.int64)
    placed = indices >= 0
    masks = getattr(result, "masks", None)
    return indices[placed], None if masks is None else np.asarray(masks, np.int64)[placed]


class BacklogDrainer(Protocol):
    """Offers freed capacity to the backlog (the rebalancing seam)."""

    def observe(self, demand: FloatArray, count: int) -> None:
        """``count`` instances of ``demand`` arrived (the balancer service sees every task)."""

    def drain(self, sim: Simulation) -> None: ...

    def recover(self, sim: Simulation, task: int, count: int) -> None: ...

    def head(self, sim: Simulation) -> Pending | None:
        """The backlog entry first in this drainer's waiting order (``None``: empty)."""


class Simulation:
    """One replay of a workload on a cluster under one placer and drainer."""

    def __init__(
        self,
        workload: Workload,
        cluster: Cluster,
        events: NodeEvents,
        placer_factory: Callable[[NodeTable], BatchPlacer],
        drainer: BacklogDrainer,
        sample_step: float = DEFAULT_SAMPLE_STEP,
        probation: Probation | None = None,
        reserve: bool = False,
        lapse_s: float = RESERVATION_LAPSE_S,
        end_aware: bool = False,
    ) -> None:
        self.workload = workload
        self.cluster = cluster
        self.events = events
        self.table = NodeTable(len(cluster.node_ids))
        for node_id, cap in zip(cluster.node_ids, cluster.capacity, strict=True):
            self.table.upsert(node_id, cap)
        self.placer = placer_factory(self.table)
        self.drainer = drainer
        self.up = np.ones(len(cluster.node_ids), dtype=np.bool_)
        """Nodes that run (the table's ``alive``: those that also take new work)."""
        self.horizon: NodeHorizon | None = None
        """End-aware placement from the known durations (Boson's placer, ``horizon.py``)."""
        if end_aware and isinstance(self.placer, Placer):
            self.horizon = self.placer.horizon = NodeHorizon(self.up)
        self.probation = probation
        self._probation_ends: list[tuple[float, int]] = []
        self.backlog: deque[Pending] = deque()
        self.now = 0.0
        self.dead_node_id = ""
        """The node whose failure is being handled (for recovery planning)."""
        self.recorder = Recorder.for_tasks(workload.tasks)
        self._groups: dict[int, _Group] = {}
        self._heap: list[tuple[float, int]] = []
        self._seq = 0
        self._step = sample_step
        demand = workload.demand
        shapes = np.unique(cluster.capacity, axis=0).reshape(-1, 3)
        self._never = ~np.any(np.all(shapes[None, :, :] >= demand[:, None, :], axis=2), axis=1)
        self._median = (
            np.median(np.repeat(demand, workload.instances, axis=0), axis=0)
            if workload.tasks
            else np.zeros(3)
        )
        work = (demand * (workload.instances * workload.duration)[:, None]).sum(axis=0)
        self._bottleneck = int(np.argmax(work / np.maximum(cluster.capacity.sum(axis=0), 1e-12)))
        self.demands: list[tuple[float, float, float]] = [
            (cpu, memory, gpu) for cpu, memory, gpu in demand.tolist()
        ]
        """Each task's demand as plain floats, for per-entry checks in Python."""
        self._gpu_points = gpu_points(workload)
        self.reserve = reserve
        """Whether the head of the waiting order gets a reservation (Boson's policies)."""
        self.lapse_s = lapse_s
        self.reservation: HeadReservation | None = None
        self._unplanned: tuple[Pending, float] | None = None
        """A head no plan found a node for, and until when not to look again."""

    @property
    def bottleneck(self) -> int:
        """The resource with the highest offered load (0 cpu, 1 memory, 2 gpu)."""
        return self._bottleneck

    # -- the steps the drainers use -----------------------------------

    def try_place(self, task: int, count: int, replaced: bool, entry: Pending | None = None) -> int:
        """Place up to ``count`` instances of ``task`` now; how many were placed.

        ``entry`` is the backlog entry they come from: unless it holds the
        head reservation, they backfill around it (see :meth:`_backfill`).
        """
        res = self.reservation
        if res is None or (entry is not None and res.key is entry):
            nodes, masks = place_instances_on_devices(
                self.placer,
                self.table,
                self.workload.demand[task],
                count,
                self._ends(task, entry),
            )
        else:
            nodes, masks = self._backfill(res, task, count, entry)
        if nodes.size:
            self.start(task, nodes, replaced, masks)
        return int(nodes.size)

    def _backfill(
        self, res: HeadReservation, task: int, count: int, entry: Pending | None = None
    ) -> tuple[IntArray, IntArray | None]:
        """Place around the head reservation: on a reserved node, only what does not delay it.

        A task still running at a reserved node's start may use there no
        more than the room the reservation leaves beside the head. A
        reserved node where the instances asked for would not all fit in
        that room is closed to this one placement (marked down, then
        restored), so the placer, whatever its strategy, never sees it. On
        one that stays open, each device's room beyond its spare (the
        devices held for the head) is blocked for the placement, so the
        placer's device choice cannot take them.
        """
        demand = self.workload.demand[task]
        end = self.now + float(self.workload.duration[task])
        table = self.table
        closed: list[str] = []
        blocked: list[tuple[int, FloatArray, int]] = []
        milli = _dev.to_milli(demand[2])
        for row in res.rows.tolist():
            limit = res.room(row, end)
            if limit is None or not table.alive[row]:
                continue
            if res.device_spare is None:
                fit = bool(np.all(demand * count <= limit + FIT_EPSILON))
            else:
                fit = bool(np.all(demand[:2] * count <= limit[:2] + FIT_EPSILON))
                fit = fit and res.admits(row, demand, end, table.device_free(row).tolist())
            if not fit:
                closed.append(table.node_ids[row])
                table.set_alive(closed[-1], False)
                continue
            spare = res.device_room(row, end)
            if spare is not None and milli:
                free = table.device_free(row)
                for j in range(min(free.shape[0], spare.shape[0])):
                    extra = int(free[j]) - int(spare[j])
                    if extra > 0:
                        block = np.array([0.0, 0.0, extra / _dev.MILLI])
                        table.allocate(row, block, 1 << j)
                        blocked.append((row, block, 1 << j))
        try:
            nodes, masks = place_instances_on_devices(
                self.placer, table, demand, count, self._ends(task, entry)
            )
        finally:
            for row, block, mask in blocked:
                table.release(row, block, mask)
            for node_id in closed:
                table.set_alive(node_id, True)
        if nodes.size:
            for row in res.rows.tolist():
                hit = nodes == row
                placed = int(np.count_nonzero(hit))
                if placed:
                    res.commit(
                        row, demand, end, placed, None if masks is None else masks[hit].tolist()
                    )
        return nodes, masks

    def _ends(self, task: int, entry: Pending | None = None) -> tuple[float, float, float] | None:
        """``(now, expected end, waiting since)`` of ``task`` placed now (from ``entry``
        of the backlog, else arriving), for end-aware placement."""
        if self.horizon is None:
            return None
        since = self.now if entry is None else entry.since
        return self.now, self.now + float(self.workload.duration[task]), since

    def update_reservation(self) -> None:
        """Keep the head reservation on the head of the waiting order (Boson's policies).

        Made when the head changes, remade when it lapses; dropped when
        nothing waits.
        """
        if not self.reserve:
            return
        head = self.drainer.head(self) if self.backlog else None
        if head is None or not head.count:
            self.reservation = None
            return
        res = self.reservation
        if res is not None and res.key is head and not res.lapsed(self.now):
            return
        unplanned = self._unplanned
        if unplanned is not None and unplanned[0] is head and self.now < unplanned[1]:
            # No node will have room for it as things run: asking again
            # before a node event or the lapse would walk everything again.
            return
        demand = self.workload.demand[head.task]
        alive = self.table.alive
        if self.horizon is not None:  # only nodes end-aware placement lets it take
            ends = self._ends(head.task, head)
            assert ends is not None
            alive = alive & ~self.horizon.barred(
                demand, ends[1], ends[0], self.table.capacity, alive, ends[0] - ends[2]
            )
        # Instances are independent schedulable units: the head is the entry's
        # next instance, and each one after it is the head in its turn.
        self.reservation = plan_reservation(
            head,
            demand,
            1,
            self.table.capacity - self.table.allocated,
            alive,
            self._releases(),
            self.now,
            self.lapse_s,
            self._device_room(),
        )
        if self.reservation is not None:
            self.recorder.promised.setdefault(head.task, self.reservation.promised_start)
            self._unplanned = None
        else:
            self._unplanned = (head, self.now + self.lapse_s)

    def _device_room(self) -> DeviceRoom | None:
        """The table's GPU devices as the planner reads them (``None``: no devices)."""
        table = self.table
        if not table.has_devices:
            return None
        cap = table.device_capacity
        return DeviceRoom(cap - table.device_allocated, cap.copy(), cap > 0)

    def _releases(self) -> Iterator[Release]:
        """What the running work releases, in order of its (known) end, lazily.

        The completion heap read in order without popping it: a second heap
        of the first heap's positions, whose children enter as each is read.
        The planner usually stops after a few releases, so a plan costs
        little however much runs.
        """
        heap = self._heap
        demand = self.workload.demand
        frontier = [(heap[0], 0)] if heap else []
        while frontier:
            (end, key), i = heapq.heappop(frontier)
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], child))
            group = self._groups.get(key)
            if group is None:  # ended early: its node failed
                continue
            if group.masks is not None and demand[group.task, 2] > 0:
                yield from self._device_releases(end, group)
                continue
            rows, counts = np.unique(group.nodes, return_counts=True)
            for row, n in zip(rows.tolist(), counts.tolist(), strict=True):
                yield end, row, demand[group.task] * n, None

    def _device_releases(self, end: float, group: _Group) -> Iterator[Release]:
        """A GPU group's releases, each node's with the milli-units it frees per device."""
        assert group.masks is not None
        task_demand = self.workload.demand[group.task]
        _, per = _dev.shape(_dev.to_milli(task_demand[2]))
        width = self.table.device_capacity.shape[1]
        freed: dict[int, tuple[int, IntArray]] = {}
        for row, mask in zip(group.nodes.tolist(), group.masks.tolist(), strict=True):
            n, amounts = freed.get(row, (0, np.zeros(width, np.int64)))
            for j in _dev.indices_of(mask):
                if j < width:
                    amounts[j] += per
            freed[row] = (n + 1, amounts)
        for row in sorted(freed):
            n, amounts = freed[row]
            yield end, row, task_demand * n, amounts

    def start(
        self, task: int, nodes: IntArray, replaced: bool, masks: IntArray | None = None
    ) -> None:
        """Start instances of ``task`` on ``nodes`` (allocated, on GPU devices ``masks``) now."""
        end = self.now + float(self.workload.duration[task])
        self._seq += 1
        self._groups[self._seq] = _Group(task, nodes, end, masks)
        heapq.heappush(self._heap, (end, self._seq))
        rec = self.recorder
        rec.first_start[task] = min(rec.first_start[task], self.now)
        rec.last_end[task] = max(rec.last_end[task], end)
        if not replaced:
            rec.delays.append(self.now - float(self.workload.submit[task]))
            rec.delay_weights.append(int(nodes.size))
            rec.delay_tasks.append(task)

    def _release(self, task: int, nodes: IntArray, masks: IntArray | None = None) -> None:
        demand = self.workload.demand[task]
        if masks is not None and demand[2] > 0:  # each instance off its own devices
            for node, mask in zip(nodes.tolist(), masks.tolist(), strict=True):
                self.table.release(node, demand, mask)
            return
        where, count = np.unique(nodes, return_counts=True)
        for node, n in zip(where.tolist(), count.tolist(), strict=True):
            self.table.release(node, demand * n)

    # -- events ----------------------------------------------------------

    def _arrive(self, task: int) -> None:
        count = int(self.workload.instances[task])
        self.drainer.observe(self.workload.demand[task], count)
        if self._never[task]:
            self.recorder.never += count
            self.recorder.never_fits += count
            self.recorder.never_tasks[task] = True
            return
        placed = self.try_place(task, count, replaced=False)
        if placed < count:
            self.backlog.append(Pending(task, count - placed, False, self.now))
            self.update_reservation()

    def _node_event(self, node: int, up: bool) -> None:
        node_id = self.cluster.node_ids[node]
        self._unplanned = None  # the cluster changed: a plan may find a node now
        if up:
            if self.up[node]:
                return
            self.up[node] = True
            until = self.now
            if self.probation is not None:
                until = self.probation.returned(node_id, self.now, len(self.cluster.node_ids))
            if until > self.now:  # back, but no new work until its probation ends
                heapq.heappush(self._probation_ends, (until, node))
            else:
                self.table.set_alive(node_id, True)
            return
        if not self.up[node]:
            return
        self.up[node] = False
        if self.probation is not None:
            self.probation.failed(node_id, self.now)
        self.table.set_alive(node_id, False)
        if self.horizon is not None:
            self.horizon.clear(node)
        self.dead_node_id = node_id
        if self.reservation is not None and self.reservation.slot(node) >= 0:
            self.reservation.end_now()
        for key, group in list(self._groups.items()):
            hit = group.nodes == node
            if not hit.any():
                continue
            lost = int(hit.sum())
            self._release(
                group.task, group.nodes[hit], None if group.masks is None else group.masks[hit]
            )
            group.nodes = group.nodes[~hit]
            if group.masks is not None:
                group.masks = group.masks[~hit]
            if group.nodes.size == 0:
                del self._groups[key]  # its heap entry is skipped when it pops
            self.recorder.replaced += lost
            self._lost(key, group, lost)

    def _lost(self, key: int, group: _Group, lost: int) -> None:
        """``lost`` instances of ``group`` died with their node (already released)."""
        self.drainer.recover(self, group.task, lost)

    def _finished(self, key: int, group: _Group) -> None:
        """``group`` ran to its end."""
        self._release(group.task, group.nodes, group.masks)

    def _waiting(self) -> bool:
        """Whether any work waits for capacity."""
        return bool(self.backlog)

    def _wakeup(self) -> float | None:
        """A time, other than arrivals, completions and node events, to act at."""
        return None

    def _end_probations(self, now: float) -> bool:
        """Nodes whose probation ended by ``now`` take work again; whether any did."""
        freed = False
        ends = self._probation_ends
        while ends and ends[0][0] <= now:
            _, node = heapq.heappop(ends)
            node_id = self.cluster.node_ids[node]
            until = self.probation.ends(node_id) if self.probation is not None else None
            # A stale entry: the node failed again since (down, or a later probation).
            if self.up[node] and not self.table.alive[node] and (until is None or until <= now):
                self.table.set_alive(node_id, True)
                self._unplanned = None
                freed = True
        return freed

    def _sample(self, when: float) -> None:
        if self._gpu_points.size:
            self.recorder.gpu_fragmentation.append(
                gpu_fragmentation(self.table, self.up, self._gpu_points)
            )
        self.recorder.sample(
            when,
            self.table.capacity,
            self.table.allocated,
            self.up,
            self._median,
            self._bottleneck,
            self._waiting_count(),
        )

    def _waiting_count(self) -> int:
        """Instances waiting for capacity."""
        return sum(p.count for p in self.backlog)

    def run(self) -> Recorder:
        """Replay everything; returns what was recorded."""
        w = self.workload
        order = np.argsort(w.submit, kind="stable")
        arrivals = w.submit[order].tolist()
        tasks = order.tolist()
        ev_time, ev_node, ev_up = (
            self.events.time.tolist(),
            self.events.node.tolist(),
            self.events.up.tolist(),
        )
        a = e = 0
        next_sample = arrivals[0] if arrivals else 0.0
        self.recorder.window_end = arrivals[-1] if arrivals else 0.0
        while True:
            busy = a < len(arrivals) or self._heap or self._waiting()
            candidates = []
            if a < len(arrivals):
                candidates.append(arrivals[a])
            if self._heap:
                candidates.append(self._heap[0][0])
            if e < len(ev_time) and busy:
                candidates.append(ev_time[e])
            if self._probation_ends and busy:
                candidates.append(self._probation_ends[0][0])
            wake = self._wakeup() if busy else None
            if wake is not None and wake > self.now:
                candidates.append(wake)
            if not candidates:
                break
            now = min(candidates)
            while next_sample < now:
                self._sample(next_sample)
                next_sample += self._step
            self.now = now
            freed = False
            while self._heap and self._heap[0][0] <= now:
                _, key = heapq.heappop(self._heap)
                group = self._groups.pop(key, None)
                if group is not None:
                    self._finished(key, group)
                    freed = True
            while e < len(ev_time) and ev_time[e] <= now:
                self._node_event(ev_node[e], ev_up[e])
                freed = freed or ev_up[e]
                e += 1
            freed = self._end_probations(now) or freed
            if (freed or wake == now) and self._waiting():
                self.drainer.drain(self)
            self.update_reservation()
            while a < len(arrivals) and arrivals[a] <= now:
                self._arrive(tasks[a])
                a += 1
        # Whatever still waits can never run: no capacity will ever free again.
        self.recorder.never += self._waiting_count()
        self._sample(next_sample)
        return self.recorder


def simulate(
    name: str,
    workload: Workload,
    cluster: Cluster,
    events: NodeEvents,
    placer_factory: Callable[[NodeTable], BatchPlacer],
    drainer: BacklogDrainer,
    sample_step: float = DEFAULT_SAMPLE_STEP,
    probation: Probation | None = None,
    reserve: bool = False,
    end_aware: bool = False,
) -> tuple[Metrics, Recorder]:
    """Run one strategy and summarise it (``probation``: Boson's, for nodes that fail;
    ``reserve``: a head reservation; ``end_aware``: placement from known durations;
    see :class:`Simulation`)."""
    started = time.perf_counter()
    sim = Simulation(
        workload,
        cluster,
        events,
        placer_factory,
        drainer,
        sample_step,
        probation,
        reserve,
        end_aware=end_aware,
    )
    recorder = sim.run()
    wall = time.perf_counter() - started
    return summarise(name, recorder, workload, cluster.capacity, wall), recorder


__all__ = [
    "DEFAULT_SAMPLE_STEP",
    "BacklogDrainer",
    "Pending",
    "Simulation",
    "place_instances",
    "place_instances_on_devices",
    "simulate",
]
