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

The waiting entries, running groups and the pure placement step every path
shares are in :mod:`boson.simulation.instances`; placing around the head
reservation and keeping it on the head, in :mod:`boson.simulation.reserving`.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from boson.simulation import reserving
from boson.simulation.instances import (
    BacklogDrainer,
    Pending,
    RunningGroup,
    place_instances_on_devices,
)
from boson.simulation.metrics import (
    Metrics,
    Recorder,
    gpu_fragmentation,
    gpu_points,
    summarise,
)
from boson.simulation.table import BatchPlacer, IntArray
from boson.simulation.trace_types import Cluster, NodeEvents, Workload
from boson_shared.scheduling.head_reservation import RESERVATION_LAPSE_S, HeadReservation
from boson_shared.scheduling.horizon import NodeHorizon
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.probation import Probation
from boson_shared.scheduling.table import NodeTable

DEFAULT_SAMPLE_STEP = 10.0
"""Seconds between samples of the time-averaged metrics."""


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
        self._groups: dict[int, RunningGroup] = {}
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
        head reservation, they backfill around it (:func:`.reserving.backfill`).
        """
        res = self.reservation
        if res is None or (entry is not None and res.key is entry):
            nodes, masks = place_instances_on_devices(
                self.placer,
                self.table,
                self.workload.demand[task],
                count,
                reserving.expected_ends(self, task, entry),
            )
        else:
            nodes, masks = reserving.backfill(self, res, task, count, entry)
        if nodes.size:
            self.start(task, nodes, replaced, masks)
        return int(nodes.size)

    def update_reservation(self) -> None:
        """Keep the head reservation on the head of the waiting order (Boson's policies;
        :func:`~boson.simulation.reserving.update_reservation`)."""
        reserving.update_reservation(self)

    def start(
        self, task: int, nodes: IntArray, replaced: bool, masks: IntArray | None = None
    ) -> None:
        """Start instances of ``task`` on ``nodes`` (allocated, on GPU devices ``masks``) now."""
        end = self.now + float(self.workload.duration[task])
        self._seq += 1
        self._groups[self._seq] = RunningGroup(task, nodes, end, masks)
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

    def _lost(self, key: int, group: RunningGroup, lost: int) -> None:
        """``lost`` instances of ``group`` died with their node (already released)."""
        self.drainer.recover(self, group.task, lost)

    def _finished(self, key: int, group: RunningGroup) -> None:
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


__all__ = ["DEFAULT_SAMPLE_STEP", "Simulation", "simulate"]
