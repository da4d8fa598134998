"""BASELINES for the simulator — what other schedulers do, not Boson's strategies.

Random, round-robin, first-fit and Kubernetes' default scoring (the
``NodeResourcesFit`` LeastAllocated score plus ``NodeResourcesBalancedAllocation``,
equal weights), written as placer plug-ins with the same ``place_batch`` shape
as :class:`boson_shared.scheduling.placement.Placer` and committing into the same
:class:`~boson_shared.scheduling.placement.NodeTable`, so the simulator drives them
exactly as it drives Boson's placer. They exist only to be compared against.

Every plug-in places a batch one instance after the other (each sees the
previous one's allocation); runs of identical rows are handled in closed form
where the sequential rule allows it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from boson.simulation.table import FloatArray, IntArray, SimTable, fit_counts
from boson_shared.scheduling.placement_outcomes import NEVER, WAITING


@dataclass(frozen=True)
class BaselineBatch:
    """Same shape as the placer's ``BatchPlacement``: a row index, ``WAITING`` or ``NEVER``."""

    indices: IntArray
    masks: IntArray | None = None
    """Per row, the GPU devices it holds (a bit mask; ``None``: no row holds any)."""


def _runs(demands: FloatArray) -> list[tuple[int, int]]:
    """[start, stop) of runs of identical consecutive rows."""
    if demands.shape[0] == 0:
        return []
    change = np.flatnonzero(np.any(demands[1:] != demands[:-1], axis=1)) + 1
    edges = [0, *change.tolist(), demands.shape[0]]
    return list(itertools.pairwise(edges))


class _Baseline:
    """Shared batch loop: split into identical runs, assign, commit per node."""

    name = "baseline"

    def __init__(self, table: SimTable) -> None:
        self.table = table

    def place_batch(self, demands: FloatArray) -> BaselineBatch:
        out = np.full(demands.shape[0], WAITING, np.int64)
        masks: IntArray | None = None
        for start, stop in _runs(demands):
            demand = demands[start]
            if not self.table.fits_any_total(demand):
                out[start:stop] = NEVER
                continue
            counts = fit_counts(self.table, demand)
            chosen = self._assign(demand, counts, stop - start)
            out[start : start + chosen.size] = chosen
            if chosen.size and demand[2] > 0:
                # Per instance, on the devices the table's choice rule gives it.
                if masks is None:
                    masks = np.zeros(demands.shape[0], np.int64)
                for k, node in enumerate(chosen.tolist()):
                    masks[start + k] = self.table.allocate(node, demand)
            elif chosen.size:
                nodes, per_node = np.unique(chosen, return_counts=True)
                for node, count in zip(nodes.tolist(), per_node.tolist(), strict=True):
                    self.table.allocate(node, demand * count)
        return BaselineBatch(out, masks)

    def _assign(self, demand: FloatArray, counts: IntArray, k: int) -> IntArray:
        raise NotImplementedError


class FirstFit(_Baseline):
    """BASELINE: the lowest-index node that fits."""

    name = "first-fit"

    def _assign(self, demand: FloatArray, counts: IntArray, k: int) -> IntArray:
        before = np.cumsum(counts) - counts
        take = np.clip(k - before, 0, counts)
        return np.repeat(np.arange(counts.size, dtype=np.int64), take)


class RoundRobin(_Baseline):
    """BASELINE: the next node that fits after the last one used, cyclically."""

    name = "round-robin"

    def __init__(self, table: SimTable) -> None:
        super().__init__(table)
        self._next = 0

    def _assign(self, demand: FloatArray, counts: IntArray, k: int) -> IntArray:
        n = counts.size
        order = (np.arange(n) + self._next) % n
        rotated = counts[order]
        picks: list[IntArray] = []
        got = 0
        depth = 0
        # Round r visits, in cyclic order, every node that still fits r+1 more.
        while got < k:
            nodes = order[rotated > depth]
            if nodes.size == 0:
                break
            nodes = nodes[: k - got]
            picks.append(nodes)
            got += nodes.size
            depth += 1
        if not picks:
            return np.zeros(0, np.int64)
        chosen = np.concatenate(picks).astype(np.int64)
        self._next = (int(chosen[-1]) + 1) % n
        return chosen


class RandomFit(_Baseline):
    """BASELINE: a uniformly random node among those that fit (seeded)."""

    name = "random"

    def __init__(self, table: SimTable, seed: int = 0) -> None:
        super().__init__(table)
        self._rng = np.random.default_rng(seed)

    def _assign(self, demand: FloatArray, counts: IntArray, k: int) -> IntArray:
        left = counts.copy()
        picks: list[IntArray] = []
        need = min(k, int(left.sum()))
        # Draw for all at once, keep what fits, redraw the overflow among the
        # nodes still open: the per-instance rule without a per-instance loop.
        while need > 0:
            open_nodes = np.flatnonzero(left > 0)
            draw = self._rng.choice(open_nodes, size=need)
            got = np.minimum(np.bincount(draw, minlength=left.size), left)
            picks.append(np.repeat(np.arange(left.size, dtype=np.int64), got))
            left -= got
            need -= int(got.sum())
        if not picks:
            return np.zeros(0, np.int64)
        chosen = np.concatenate(picks)
        self._rng.shuffle(chosen)
        return chosen


class KubernetesDefault(_Baseline):
    """BASELINE: kube-scheduler's default score, LeastAllocated + BalancedAllocation.

    Both scores on CPU and memory (the defaults; GPUs are extended resources
    that the default profile does not score), each 0..100, summed with equal
    weights after hypothetically adding the pod. kube-scheduler breaks ties at
    random; here the lowest index wins, so runs are reproducible.
    """

    name = "k8s-default"

    def _score(self, allocated: FloatArray, capacity: FloatArray) -> FloatArray:
        cap = capacity[..., :2]
        frac = np.divide(allocated[..., :2], cap, out=np.ones_like(cap), where=cap > 0)
        frac = np.minimum(frac, 1.0)
        least = ((1.0 - frac[..., 0]) + (1.0 - frac[..., 1])) / 2.0 * 100.0
        # Two resources: the population standard deviation is |a - b| / 2.
        balanced = (1.0 - np.abs(frac[..., 0] - frac[..., 1]) / 2.0) * 100.0
        result: FloatArray = least + balanced
        return result

    def _assign(self, demand: FloatArray, counts: IntArray, k: int) -> IntArray:
        cap = self.table.capacity
        alloc = self.table.allocated + demand
        feasible = np.flatnonzero(counts > 0)
        score = self._score(alloc[feasible], cap[feasible])
        # Greedy, one instance at a time, through a heap keyed (-score, node):
        # the highest score wins and the lowest index breaks ties.
        heap = list(zip((-score).tolist(), feasible.tolist(), strict=True))
        heapq.heapify(heap)
        left = counts.tolist()
        d_cpu, d_mem = float(demand[0]), float(demand[1])
        a_cpu, a_mem = alloc[:, 0].tolist(), alloc[:, 1].tolist()
        c_cpu, c_mem = cap[:, 0].tolist(), cap[:, 1].tolist()
        chosen = np.empty(min(k, int(counts.sum())), np.int64)
        for j in range(chosen.size):
            best = heap[0][1]
            chosen[j] = best
            left[best] -= 1
            if not left[best]:
                heapq.heappop(heap)
                continue
            a_cpu[best] += d_cpu
            a_mem[best] += d_mem
            value = _k8s_score(a_cpu[best], a_mem[best], c_cpu[best], c_mem[best])
            heapq.heapreplace(heap, (-value, best))
        return chosen


def _k8s_score(a_cpu: float, a_mem: float, c_cpu: float, c_mem: float) -> float:
    """Scalar twin of :meth:`KubernetesDefault._score` (same formula, same rounding)."""
    f_cpu = min(a_cpu / c_cpu, 1.0) if c_cpu > 0 else 1.0
    f_mem = min(a_mem / c_mem, 1.0) if c_mem > 0 else 1.0
    least = ((1.0 - f_cpu) + (1.0 - f_mem)) / 2.0 * 100.0
    return least + (1.0 - abs(f_cpu - f_mem) / 2.0) * 100.0


BASELINES: dict[str, Callable[[SimTable], _Baseline]] = {
    FirstFit.name: FirstFit,
    RoundRobin.name: RoundRobin,
    RandomFit.name: RandomFit,
    KubernetesDefault.name: KubernetesDefault,
}
"""Baseline name → factory over a node table."""


__all__ = [
    "BASELINES",
    "BaselineBatch",
    "FirstFit",
    "KubernetesDefault",
    "RandomFit",
    "RoundRobin",
]
