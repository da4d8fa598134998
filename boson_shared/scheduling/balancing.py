"""Balancing helpers (docs/design.md#balancing): re-picks, imbalance, dispatch order, recovery.

Pure functions: the balancer service's dispatcher
(:class:`~boson_services.balancer.dispatcher.Dispatcher`, which owns credit
and the moving of held work) and the simulator's balancer
decide *when* to call them and carry out what they return. Everything here is
deterministic given its inputs (and, for :func:`power_of_two_choices`, the
``numpy.random.Generator`` passed in).

Two utilisations are kept apart (docs/design.md#placement): *measured*
utilisation (what heartbeats report, in [0, 1]) decides what is hot and how
uneven the cluster is; *allocated* capacity in the :class:`NodeTable` decides
where work fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from boson_shared.scheduling.devices import indices_of
from boson_shared.scheduling.fgd_scoring import stranded_bottleneck
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.placement_outcomes import Status
from boson_shared.scheduling.table import FIT_EPSILON, FloatArray, NodeTable, as_vector


def power_of_two_choices(
    candidates: int | Sequence[int] | ArrayLike, load: ArrayLike, rng: np.random.Generator
) -> int:
    """Pick two distinct candidates at random and return the less loaded one.

    ``candidates`` is a count ``n`` (meaning ``0..n-1``) or a sequence of
    indices into ``load``; the result is one of them. Ties go to the lower
    index. Two random choices give exponentially better balance than one,
    without the herd a global minimum causes among concurrent dispatchers
    (Mitzenmacher, 2001).
    """
    if isinstance(candidates, int | np.integer):
        pool = np.arange(int(candidates))
    else:
        pool = np.asarray(candidates, dtype=np.int64).reshape(-1)
    if pool.size == 0:
        raise ValueError("power_of_two_choices needs at least one candidate")
    loads = np.asarray(load, dtype=np.float64).reshape(-1)
    if pool.size == 1:
        return int(pool[0])
    a, b = (int(x) for x in pool[rng.choice(pool.size, size=2, replace=False)])
    la, lb = loads[a], loads[b]
    if la < lb or (la == lb and a < b):
        return a
    return b


def node_load(measured: ArrayLike) -> FloatArray:
    """Per-node measured utilisation: itself if 1-D, the busiest dimension if ``(n, k)``."""
    arr = np.asarray(measured, dtype=np.float64)
    out: FloatArray = arr.max(axis=1) if arr.ndim == 2 and arr.shape[1] else arr.reshape(-1)
    return out


def imbalance(measured: ArrayLike) -> float:
    """Coefficient of variation (std ÷ mean) of measured node utilisation; 0 if idle or empty."""
    load = node_load(measured)
    if load.size == 0:
        return 0.0
    mean = float(load.mean())
    return 0.0 if mean <= 0 else float(load.std() / mean)


@dataclass(frozen=True, slots=True)
class QueuedTask:
    """Work held for a node and not started yet: it may still move."""

    task_id: str
    node_id: str
    demand: tuple[float, float, float]


AGE_LIMIT_S = 450.0
"""Held work older than this is offered capacity before the smallest pending job
(oldest first), so big jobs do not starve (:func:`dispatch_order`)."""


def dispatch_order(
    jobs: Sequence[object],
    counts: Sequence[int],
    waited: Sequence[float],
    urgent: Sequence[bool],
    age_limit: float,
) -> list[int]:
    """The order in which to offer freed capacity to held work: smallest pending job first.

    Entry ``k`` of the held queue (oldest first) belongs to job ``jobs[k]``,
    holds ``counts[k]`` instances and has waited ``waited[k]`` seconds;
    ``urgent`` ones (a dead node's work) go first. Then every entry that has
    waited at least ``age_limit`` seconds, oldest first — the guard that keeps
    big jobs from starving — and then the rest by how many instances their
    job has waiting in all, fewest first (shortest-remaining-job order
    without knowing durations: it cuts mean job completion time). Ties keep
    queue order. Returns the entry indices in that order.
    """
    pending: dict[object, int] = {}
    for job, count in zip(jobs, counts, strict=True):
        pending[job] = pending.get(job, 0) + count

    def key(k: int) -> tuple[int, int, int]:
        if urgent[k]:
            return (0, 0, k)
        if waited[k] >= age_limit:
            return (1, 0, k)
        return (2, pending[jobs[k]], k)

    return sorted(range(len(counts)), key=key)


def fits_cleanly(
    free: FloatArray, demand: FloatArray, typical: FloatArray, bottleneck: int
) -> npt.NDArray[np.bool_]:
    """Rows of ``free`` (``(n, 3)``) that ``demand`` fits and strands nothing more on.

    "Strands" is ``binpack-fgd``'s measure against the ``typical`` demand (one,
    or points ``(k, 3)`` of the distribution) on the ``bottleneck`` dimension
    (see :mod:`~boson_shared.scheduling.fgd_scoring`): the placement must not grow the
    bottleneck capacity that typical tasks could not use — it leaves room for
    whole typical tasks, or fills a remnant that was stranded already.
    Without an estimate (``typical`` all zero) no row qualifies, so a caller
    that offers clean fits first behaves as if it did not.
    """
    clean = np.zeros(free.shape[0], dtype=np.bool_)
    if free.shape[0] == 0 or not np.any(typical > 0):
        return clean
    # Stranding only where the demand fits: in a full cluster, few rows.
    rows = np.flatnonzero(np.all(free >= demand - FIT_EPSILON, axis=1))
    if rows.size:
        room = free[rows]
        before = stranded_bottleneck(room, typical, bottleneck)
        after = stranded_bottleneck(room - demand, typical, bottleneck)
        clean[rows] = after <= before + FIT_EPSILON
    return clean


@dataclass(frozen=True, slots=True)
class Recovery:
    """Where a dead node's queued task goes: a node, or waiting / never."""

    task_id: str
    from_node: str
    to_node: str | None
    status: Status
    devices: tuple[int, ...] = ()
    """The GPU devices of ``to_node`` picked for it (picked again, not carried over)."""


def plan_recovery(tasks: Sequence[QueuedTask], table: NodeTable, placer: Placer) -> list[Recovery]:
    """Re-place a dead node's queued work with ``placer`` (allocating in ``table``).

    The dead node must already be marked dead in ``table`` (a ``ValueError``
    otherwise), so nothing goes back to it. Tasks are re-placed in the order
    given — the order they were queued — as one batch.
    """
    if placer.table is not table:
        raise ValueError("the placer must work on the table given")
    for node_id in {t.node_id for t in tasks}:
        if node_id in table and table.alive[table.index_of(node_id)]:
            raise ValueError(f"node {node_id} is alive: mark it dead before planning recovery")
    if not tasks:
        return []
    demands = np.stack([as_vector(t.demand) for t in tasks])
    batch = placer.place_batch(demands)
    masks = batch.masks.tolist() if batch.masks is not None else [0] * len(tasks)
    return [
        Recovery(t.task_id, t.node_id, batch.node_ids[k], batch.status(k), indices_of(masks[k]))
        for k, t in enumerate(tasks)
    ]


__all__ = [
    "AGE_LIMIT_S",
    "QueuedTask",
    "Recovery",
    "dispatch_order",
    "fits_cleanly",
    "imbalance",
    "node_load",
    "plan_recovery",
    "power_of_two_choices",
]
