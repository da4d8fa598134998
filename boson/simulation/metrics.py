"""What a simulated run is judged on, computed from what the engine recorded.

Definitions (the simulator's report and the benchmark use exactly these):

* **Job completion time (JCT)** — last instance end of the job minus the
  job's first task submission. Mean, p95, p99 over jobs.
* **Queueing delay** — per instance, its first start minus its task's
  submission (re-placements after a failure do not add to it). Mean, p99
  and the longest (``delay_max``) over instances, and p99 per size class
  (:data:`SIZE_CLASSES`: an instance's request on the bottleneck resource as
  a share of the largest node's capacity of it).
* **Never placeable** — instances that fit no node of the cluster, not even
  an empty one (``never_fits``), plus those that fit an empty node but were
  still waiting when everything else had ended (``never_placed``); their
  sum is ``never_placeable``. Neither has a delay.
* **Slowdown** — per job, JCT ÷ max(1 s, the job's ideal JCT), the ideal
  being max over its tasks of (submission + duration) − the job's first
  submission. Mean over jobs.
* **Time-averaged quantities** are sampled on a fixed grid over the arrival
  window [first submission, last submission]: the same window for every
  strategy, and the one over which offered load is defined. Between events
  the state is constant, so a sample is exact.

  - utilisation per resource (cpu, memory, gpu): Σ allocated ÷ Σ capacity
    (all nodes);
  - fragmentation: free capacity of the bottleneck resource on alive nodes
    that cannot host the median instance (short on some dimension) ÷ total
    capacity of that resource. Two parts of it are reported as well, to show
    where it comes from: the part accrued while work waited in the backlog
    (``fragmentation_waiting``: the cluster was full for what was pending),
    and the part on nodes with room for the median on the bottleneck
    resource but short of another one (``fragmentation_other_short``: say,
    every core taken and memory left);
  - GPU fragmentation (``gpu_fragmentation``, on clusters with GPUs): Weng
    et al.'s per-device measure (``boson_shared/scheduling/devices.py``) —
    per node, the idle GPU a typical task could not use (all of it when the
    task cannot run there, else the idle part of each device with less room
    than the task's per-device share), averaged over :data:`GPU_POINTS`
    typical tasks (evenly spaced quantiles of the instances' demands), summed
    over alive nodes ÷ the cluster's GPU capacity;
  - imbalance: coefficient of variation of the alive nodes' dominant-share
    utilisation (max over resources of allocated ÷ capacity), and Jain's
    fairness index (Σx)² ÷ (n·Σx²) of the same.
* **Makespan** — last end minus first submission, against the release-aware
  lower bound max(max over tasks of (submission + duration), first submission +
  total work ÷ capacity for each resource) − first submission, over the
  tasks that ran: work that never ran bounds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from boson.simulation.table import FloatArray, IntArray
from boson.simulation.trace_types import Workload
from boson_shared.scheduling.balancing import imbalance
from boson_shared.scheduling.devices import fragmentation, to_milli
from boson_shared.scheduling.table import FIT_EPSILON, NodeTable

GPU_POINTS: Final = 16
"""Typical tasks GPU fragmentation is judged against: quantiles of the demands."""

SIZE_CLASSES: Final = (("small", 0.125), ("medium", 0.5), ("large", 1.0))
"""Size classes by an instance's bottleneck request ÷ the largest node's capacity of it:
up to an eighth (one GPU of eight), up to half, more (whole-node work)."""


def size_class(workload: Workload, capacity: FloatArray, bottleneck: int) -> IntArray:
    """Per task, the index of its class in :data:`SIZE_CLASSES`."""
    largest = float(capacity[:, bottleneck].max()) if capacity.size else 0.0
    share = workload.demand[:, bottleneck] / largest if largest > 0 else workload.demand[:, 0] * 0
    edges = np.array([edge for _, edge in SIZE_CLASSES[:-1]])
    out: IntArray = np.searchsorted(edges, share - 1e-12, side="left").astype(np.int64)
    return out


def bottleneck_of(workload: Workload, capacity: FloatArray) -> int:
    """The resource with the most work per unit of capacity."""
    work = (workload.demand * (workload.instances * workload.duration)[:, None]).sum(axis=0)
    return int(np.argmax(work / np.maximum(capacity.sum(axis=0), 1e-12)))


def gpu_points(workload: Workload) -> FloatArray:
    """:data:`GPU_POINTS` typical demands: evenly spaced quantiles of the instances'
    demands, ordered by GPU then CPU (``(k, 3)``; empty without GPU work)."""
    demand = workload.demand
    if not workload.tasks or not np.any(demand[:, 2] > 0):
        return np.zeros((0, 3))
    order = np.lexsort((demand[:, 1], demand[:, 0], demand[:, 2]))
    cumulative = np.cumsum(workload.instances[order])
    at = (np.arange(GPU_POINTS) + 0.5) / GPU_POINTS * cumulative[-1]
    picks = order[np.minimum(np.searchsorted(cumulative, at, side="right"), order.size - 1)]
    out: FloatArray = demand[picks]
    return out


def gpu_fragmentation(table: NodeTable, alive: npt.NDArray[np.bool_], points: FloatArray) -> float:
    """Weng et al.'s GPU fragmentation of ``table``'s alive nodes ÷ its GPU capacity."""
    cap = table.device_capacity
    total = float(cap[alive].sum())
    if not points.size or total <= 0:
        return 0.0
    free_devices = (cap - table.device_allocated)[alive]
    room = (table.capacity - table.allocated)[alive]
    other_ok = np.all(room[None, :, :2] + FIT_EPSILON >= points[:, None, :2], axis=2)
    milli = [to_milli(float(g)) for g in points[:, 2]]
    return float(fragmentation(free_devices, cap[alive], other_ok, milli).sum()) / total


def weighted_quantile(values: FloatArray, weights: FloatArray, q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` of the total."""
    if values.size == 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[order][min(at, values.size - 1)])


def offered_load(workload: Workload, capacity: FloatArray) -> FloatArray:
    """Σ(instances × request × duration) ÷ (capacity × arrival span), per resource.

    The definition of the traces README; 0 for a resource with no capacity.
    """
    work = (workload.demand * (workload.instances * workload.duration)[:, None]).sum(axis=0)
    span = float(workload.submit.max() - workload.submit.min()) if workload.tasks else 0.0
    total = capacity.sum(axis=0) * max(span, 1.0)
    load: FloatArray = np.divide(work, total, out=np.zeros(3), where=total > 0)
    return load


def makespan_lower_bound(
    workload: Workload, capacity: FloatArray, ran: npt.NDArray[np.bool_] | None = None
) -> float:
    """Release-aware lower bound on makespan, measured from the first submission.

    ``ran``: the tasks that ran (default all); only their work counts.
    """
    if not workload.tasks:
        return 0.0
    first = float(workload.submit.min())
    mask = np.ones(workload.tasks, np.bool_) if ran is None else ran
    if not mask.any():
        return 0.0
    work = (
        workload.demand[mask] * (workload.instances[mask] * workload.duration[mask])[:, None]
    ).sum(axis=0)
    total = capacity.sum(axis=0)
    per_resource = np.divide(work, total, out=np.zeros(3), where=total > 0)
    longest = float((workload.submit[mask] + workload.duration[mask]).max()) - first
    return max(longest, float(per_resource.max()))


@dataclass
class Recorder:
    """Filled in by the engine as it runs; read by :func:`summarise`."""

    first_start: FloatArray
    last_end: FloatArray
    never_tasks: npt.NDArray[np.bool_]
    """Tasks that fit no node of the cluster, not even an empty one."""
    promised: dict[int, float] = field(default_factory=dict)
    """Per task that held a head reservation, the start its first one promised."""
    delays: list[float] = field(default_factory=list)
    delay_weights: list[int] = field(default_factory=list)
    delay_tasks: list[int] = field(default_factory=list)
    """The task of each entry of ``delays``."""
    sample_time: list[float] = field(default_factory=list)
    utilisation: list[FloatArray] = field(default_factory=list)
    fragmentation: list[float] = field(default_factory=list)
    fragmentation_other_short: list[float] = field(default_factory=list)
    gpu_fragmentation: list[float] = field(default_factory=list)
    cv: list[float] = field(default_factory=list)
    jain: list[float] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    node_util_quantiles: list[FloatArray] = field(default_factory=list)
    replaced: int = 0
    never: int = 0
    never_fits: int = 0
    """Of ``never``: instances that fit no node, not even an empty one."""
    window_end: float = np.inf
    job_jct: FloatArray = field(default_factory=lambda: np.zeros(0))
    """Per finished job, filled in by :func:`summarise` (for the JCT chart)."""

    @staticmethod
    def for_tasks(tasks: int) -> Recorder:
        return Recorder(np.full(tasks, np.inf), np.full(tasks, -np.inf), np.zeros(tasks, np.bool_))

    def sample(
        self,
        when: float,
        capacity: FloatArray,
        allocated: FloatArray,
        alive: npt.NDArray[np.bool_],
        median: FloatArray,
        bottleneck: int,
        queued: int,
    ) -> None:
        """Record the cluster state that holds at ``when``."""
        self.sample_time.append(when)
        total = capacity.sum(axis=0)
        self.utilisation.append(
            np.divide(allocated.sum(axis=0), total, out=np.zeros(3), where=total > 0)
        )
        cap, alloc = capacity[alive], allocated[alive]
        free = np.maximum(cap - alloc, 0.0)
        fits = np.all(free >= median, axis=1)
        stranded = float(free[~fits, bottleneck].sum())
        other = ~fits & (free[:, bottleneck] >= median[bottleneck])
        elsewhere = float(free[other, bottleneck].sum())
        scale = 1.0 / total[bottleneck] if total[bottleneck] else 0.0
        self.fragmentation.append(stranded * scale)
        self.fragmentation_other_short.append(elsewhere * scale)
        share = np.divide(alloc, cap, out=np.zeros_like(alloc), where=cap > 0).max(axis=1)
        # The balancer's own imbalance measure, fed allocated shares: in the
        # simulator an instance uses exactly what it requested.
        self.cv.append(imbalance(share))
        squares = float((share * share).sum())
        self.jain.append(float(share.sum()) ** 2 / (share.size * squares) if squares else 1.0)
        self.node_util_quantiles.append(
            np.quantile(share, (0.1, 0.5, 0.9)) if share.size else np.zeros(3)
        )
        self.queued.append(queued)


@dataclass(frozen=True)
class Metrics:
    """One strategy's result on one trace (see the module docstring)."""

    strategy: str
    jct_mean: float
    jct_p95: float
    jct_p99: float
    delay_mean: float
    delay_p99: float
    delay_max: float
    delay_p99_by_size: dict[str, float]
    """p99 queueing delay per size class (:data:`SIZE_CLASSES`; those with no instance: absent)."""
    slowdown_mean: float
    utilisation: tuple[float, float, float]
    fragmentation: float
    fragmentation_waiting: float
    """The part of ``fragmentation`` accrued while work waited in the backlog."""
    fragmentation_other_short: float
    """The part on nodes short of the median on a resource other than the bottleneck."""
    gpu_fragmentation: float
    """Weng et al.'s per-device GPU fragmentation (0 without GPUs; module docstring)."""
    imbalance_cv: float
    jain: float
    replaced: int
    never_placeable: int
    never_fits: int
    """Of ``never_placeable``: instances no node could hold, even empty."""
    never_placed: int
    """Of ``never_placeable``: instances that fit an empty node yet never started."""
    makespan: float
    makespan_bound: float
    wall_seconds: float

    @property
    def makespan_ratio(self) -> float:
        return self.makespan / self.makespan_bound if self.makespan_bound else 1.0

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.__dict__)
        out["delay_p99_by_size"] = dict(self.delay_p99_by_size)
        out["makespan_ratio"] = self.makespan_ratio
        return out


def summarise(
    strategy: str, recorder: Recorder, workload: Workload, capacity: FloatArray, wall_seconds: float
) -> Metrics:
    """Turn what the engine recorded into :class:`Metrics`."""
    first = float(workload.submit.min()) if workload.tasks else 0.0
    done = np.isfinite(recorder.last_end)
    jobs = workload.jobs
    job_submit = np.full(jobs, np.inf)
    np.minimum.at(job_submit, workload.job, workload.submit)
    job_end = np.full(jobs, -np.inf)
    np.maximum.at(job_end, workload.job[done], recorder.last_end[done])
    ideal_end = np.full(jobs, -np.inf)
    np.maximum.at(ideal_end, workload.job, workload.submit + workload.duration)
    finished = np.isfinite(job_end)
    jct = (job_end - job_submit)[finished]
    ideal = np.maximum((ideal_end - job_submit)[finished], 1.0)
    recorder.job_jct = jct
    delays = np.asarray(recorder.delays, np.float64)
    weights = np.asarray(recorder.delay_weights, np.float64)
    classes = size_class(workload, capacity, bottleneck_of(workload, capacity))
    of_delay = classes[np.asarray(recorder.delay_tasks, np.int64)]
    by_size = {
        name: weighted_quantile(delays[of_delay == k], weights[of_delay == k], 0.99)
        for k, (name, _) in enumerate(SIZE_CLASSES)
        if np.any(of_delay == k)
    }
    # Time averages over the arrival window only (see the module docstring).
    inside = np.asarray(recorder.sample_time) <= recorder.window_end
    util = np.asarray(recorder.utilisation).reshape(-1, 3)[inside]
    frag = np.asarray(recorder.fragmentation)[inside]
    frag_other = np.asarray(recorder.fragmentation_other_short)[inside]
    gpu_frag = np.asarray(recorder.gpu_fragmentation)
    gpu_frag = gpu_frag[inside[: gpu_frag.size]] if gpu_frag.size else gpu_frag
    waiting = np.asarray(recorder.queued)[inside] > 0
    cv = np.asarray(recorder.cv)[inside]
    jain = np.asarray(recorder.jain)[inside]
    ones = np.ones(jct.size)
    return Metrics(
        strategy=strategy,
        jct_mean=float(jct.mean()) if jct.size else 0.0,
        jct_p95=weighted_quantile(jct, ones, 0.95),
        jct_p99=weighted_quantile(jct, ones, 0.99),
        delay_mean=float((delays * weights).sum() / weights.sum()) if weights.size else 0.0,
        delay_p99=weighted_quantile(delays, weights, 0.99),
        delay_max=float(delays.max()) if delays.size else 0.0,
        delay_p99_by_size=by_size,
        slowdown_mean=float((jct / ideal).mean()) if jct.size else 0.0,
        utilisation=_triple(util.mean(axis=0) if util.size else np.zeros(3)),
        fragmentation=float(frag.mean()) if frag.size else 0.0,
        # Both parts are averaged over the whole window, so they add up.
        fragmentation_waiting=float(np.where(waiting, frag, 0.0).mean()) if frag.size else 0.0,
        fragmentation_other_short=float(frag_other.mean()) if frag.size else 0.0,
        gpu_fragmentation=float(gpu_frag.mean()) if gpu_frag.size else 0.0,
        imbalance_cv=float(cv.mean()) if cv.size else 0.0,
        jain=float(jain.mean()) if jain.size else 1.0,
        replaced=recorder.replaced,
        never_placeable=recorder.never,
        never_fits=recorder.never_fits,
        never_placed=recorder.never - recorder.never_fits,
        makespan=float(recorder.last_end[done].max()) - first if done.any() else 0.0,
        makespan_bound=makespan_lower_bound(workload, capacity, done),
        wall_seconds=wall_seconds,
    )


def _triple(values: FloatArray) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


__all__ = [
    "GPU_POINTS",
    "SIZE_CLASSES",
    "Metrics",
    "Recorder",
    "bottleneck_of",
    "gpu_fragmentation",
    "gpu_points",
    "makespan_lower_bound",
    "offered_load",
    "size_class",
    "summarise",
    "weighted_quantile",
]
