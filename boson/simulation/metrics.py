"""What a simulated run is judged on, computed from what the engine recorded.

Definitions (the simulator's report and the benchmark use exactly these):

* **Job completion time (JCT)** — last instance end of the job minus the
  job's first task submission. Mean, p95, p99 over jobs.
* **Queueing delay** — per instance, its first start minus its task's
  submission (re-placements after a failure do not add to it). Mean and p99
  over instances.
* **Slowdown** — per job, JCT ÷ max(1 s, the job's ideal JCT), the ideal
  being max over its tasks of (submission + duration) − the job's first
  submission. Mean over jobs.
* **Time-averaged quantities** are sampled on a fixed grid over the arrival
  window [first submission, last submission]: the same window for every
  strategy, and the one over which offered load is defined. Between events
  the state is constant, so a sample is exact.

  - utilisation per resource: Σ allocated ÷ Σ capacity (all nodes);
  - fragmentation: free capacity of the bottleneck resource on alive nodes
    that cannot host the median instance (short on some dimension) ÷ total
    capacity of that resource. Two parts of it are reported as well, to show
    where it comes from: the part accrued while work waited in the backlog
    (``fragmentation_waiting``: the cluster was full for what was pending),
    and the part on nodes with room for the median on the bottleneck
    resource but short of another one (``fragmentation_other_short``: say,
    every core taken and memory left);
  - imbalance: coefficient of variation of the alive nodes' dominant-share
    utilisation (max over resources of allocated ÷ capacity), and Jain's
    fairness index (Σx)² ÷ (n·Σx²) of the same.
* **Makespan** — last end minus first submission, against the release-aware
  lower bound max(max over tasks of (submission + duration), first submission +
  total work ÷ capacity for each resource) − first submission.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from boson.simulation.table import FloatArray
from boson.simulation.traces import Workload
from boson_shared.scheduling.balancing import imbalance


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


def makespan_lower_bound(workload: Workload, capacity: FloatArray) -> float:
    """Release-aware lower bound on makespan, measured from the first submission."""
    if not workload.tasks:
        return 0.0
    first = float(workload.submit.min())
    work = (workload.demand * (workload.instances * workload.duration)[:, None]).sum(axis=0)
    total = capacity.sum(axis=0)
    per_resource = np.divide(work, total, out=np.zeros(3), where=total > 0)
    longest = float((workload.submit + workload.duration).max()) - first
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
    sample_time: list[float] = field(default_factory=list)
    utilisation: list[FloatArray] = field(default_factory=list)
    fragmentation: list[float] = field(default_factory=list)
    fragmentation_other_short: list[float] = field(default_factory=list)
    cv: list[float] = field(default_factory=list)
    jain: list[float] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    node_util_quantiles: list[FloatArray] = field(default_factory=list)
    replaced: int = 0
    never: int = 0
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
    slowdown_mean: float
    utilisation: tuple[float, float, float]
    fragmentation: float
    fragmentation_waiting: float
    """The part of ``fragmentation`` accrued while work waited in the backlog."""
    fragmentation_other_short: float
    """The part on nodes short of the median on a resource other than the bottleneck."""
    imbalance_cv: float
    jain: float
    replaced: int
    never_placeable: int
    makespan: float
    makespan_bound: float
    wall_seconds: float

    @property
    def makespan_ratio(self) -> float:
        return self.makespan / self.makespan_bound if self.makespan_bound else 1.0

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.__dict__)
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
    # Time averages over the arrival window only (see the module docstring).
    inside = np.asarray(recorder.sample_time) <= recorder.window_end
    util = np.asarray(recorder.utilisation).reshape(-1, 3)[inside]
    frag = np.asarray(recorder.fragmentation)[inside]
    frag_other = np.asarray(recorder.fragmentation_other_short)[inside]
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
        slowdown_mean=float((jct / ideal).mean()) if jct.size else 0.0,
        utilisation=_triple(util.mean(axis=0) if util.size else np.zeros(3)),
        fragmentation=float(frag.mean()) if frag.size else 0.0,
        # Both parts are averaged over the whole window, so they add up.
        fragmentation_waiting=float(np.where(waiting, frag, 0.0).mean()) if frag.size else 0.0,
        fragmentation_other_short=float(frag_other.mean()) if frag.size else 0.0,
        imbalance_cv=float(cv.mean()) if cv.size else 0.0,
        jain=float(jain.mean()) if jain.size else 1.0,
        replaced=recorder.replaced,
        never_placeable=recorder.never,
        makespan=float(recorder.last_end[done].max()) - first if done.any() else 0.0,
        makespan_bound=makespan_lower_bound(workload, capacity),
        wall_seconds=wall_seconds,
    )


def _triple(values: FloatArray) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


__all__ = [
    "Metrics",
    "Recorder",
    "makespan_lower_bound",
    "offered_load",
    "summarise",
    "weighted_quantile",
]
