"""The simulator's side of the head reservation: placing around it, and keeping it on the head.

The rule itself is :mod:`boson_shared.scheduling.head_reservation` (the
balancer uses it too); this feeds it what the simulator knows: the known end
of everything running (the completion heap, read in order) and the devices
each instance holds. See :class:`~boson.simulation.engine.Simulation`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from boson.simulation.instances import Pending, RunningGroup, place_instances_on_devices
from boson.simulation.table import FloatArray, IntArray
from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.head_reservation import (
    DeviceRoom,
    HeadReservation,
    Release,
    plan_reservation,
)
from boson_shared.scheduling.table import FIT_EPSILON

if TYPE_CHECKING:
    from boson.simulation.engine import Simulation


def backfill(
    sim: Simulation, res: HeadReservation, task: int, count: int, entry: Pending | None = None
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
    demand = sim.workload.demand[task]
    end = sim.now + float(sim.workload.duration[task])
    table = sim.table
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
            sim.placer, table, demand, count, expected_ends(sim, task, entry)
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
                res.commit(row, demand, end, placed, None if masks is None else masks[hit].tolist())
    return nodes, masks


def expected_ends(
    sim: Simulation, task: int, entry: Pending | None = None
) -> tuple[float, float, float] | None:
    """``(now, expected end, waiting since)`` of ``task`` placed now (from ``entry``
    of the backlog, else arriving), for end-aware placement."""
    if sim.horizon is None:
        return None
    since = sim.now if entry is None else entry.since
    return sim.now, sim.now + float(sim.workload.duration[task]), since


def update_reservation(sim: Simulation) -> None:
    """Keep the head reservation on the head of the waiting order (Boson's policies).

    Made when the head changes, remade when it lapses; dropped when
    nothing waits.
    """
    if not sim.reserve:
        return
    head = sim.drainer.head(sim) if sim.backlog else None
    if head is None or not head.count:
        sim.reservation = None
        return
    res = sim.reservation
    if res is not None and res.key is head and not res.lapsed(sim.now):
        return
    unplanned = sim._unplanned
    if unplanned is not None and unplanned[0] is head and sim.now < unplanned[1]:
        # No node will have room for it as things run: asking again
        # before a node event or the lapse would walk everything again.
        return
    demand = sim.workload.demand[head.task]
    alive = sim.table.alive
    if sim.horizon is not None:  # only nodes end-aware placement lets it take
        ends = expected_ends(sim, head.task, head)
        assert ends is not None
        alive = alive & ~sim.horizon.barred(
            demand, ends[1], ends[0], sim.table.capacity, alive, ends[0] - ends[2]
        )
    # Instances are independent schedulable units: the head is the entry's
    # next instance, and each one after it is the head in its turn.
    sim.reservation = plan_reservation(
        head,
        demand,
        1,
        sim.table.capacity - sim.table.allocated,
        alive,
        releases(sim),
        sim.now,
        sim.lapse_s,
        device_room(sim),
    )
    if sim.reservation is not None:
        sim.recorder.promised.setdefault(head.task, sim.reservation.promised_start)
        sim._unplanned = None
    else:
        sim._unplanned = (head, sim.now + sim.lapse_s)


def device_room(sim: Simulation) -> DeviceRoom | None:
    """The table's GPU devices as the planner reads them (``None``: no devices)."""
    table = sim.table
    if not table.has_devices:
        return None
    cap = table.device_capacity
    return DeviceRoom(cap - table.device_allocated, cap.copy(), cap > 0)


def releases(sim: Simulation) -> Iterator[Release]:
    """What the running work releases, in order of its (known) end, lazily.

    The completion heap read in order without popping it: a second heap
    of the first heap's positions, whose children enter as each is read.
    The planner usually stops after a few releases, so a plan costs
    little however much runs.
    """
    heap = sim._heap
    demand = sim.workload.demand
    frontier = [(heap[0], 0)] if heap else []
    while frontier:
        (end, key), i = heapq.heappop(frontier)
        for child in (2 * i + 1, 2 * i + 2):
            if child < len(heap):
                heapq.heappush(frontier, (heap[child], child))
        group = sim._groups.get(key)
        if group is None:  # ended early: its node failed
            continue
        if group.masks is not None and demand[group.task, 2] > 0:
            yield from device_releases(sim, end, group)
            continue
        rows, counts = np.unique(group.nodes, return_counts=True)
        for row, n in zip(rows.tolist(), counts.tolist(), strict=True):
            yield end, row, demand[group.task] * n, None


def device_releases(sim: Simulation, end: float, group: RunningGroup) -> Iterator[Release]:
    """A GPU group's releases, each node's with the milli-units it frees per device."""
    assert group.masks is not None
    task_demand = sim.workload.demand[group.task]
    _, per = _dev.shape(_dev.to_milli(task_demand[2]))
    width = sim.table.device_capacity.shape[1]
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


__all__ = ["backfill", "device_room", "expected_ends", "releases", "update_reservation"]
