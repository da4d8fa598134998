"""What a parsed trace is: the workload, the cluster, its node events, what was left out.

Every trace reader (:mod:`~boson.simulation.alibaba_v2017`,
:mod:`~boson.simulation.gpu_trace`, :mod:`~boson.simulation.csv_trace`) produces
these, and the simulator replays nothing else. Numbers are numpy arrays over
(cpu, memory, gpu), CPU and memory on the books' exact grid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from boson.simulation.table import BoolArray, FloatArray, IntArray
from boson_shared.scheduling.amounts import grid_columns


@dataclass(frozen=True)
class Workload:
    """Tasks, one row each; every instance of a task is identical.

    ``demand`` is per instance, shape (t, 3) over (cpu, memory, gpu); ``job``
    is a dense job index in 0..jobs-1.
    """

    submit: FloatArray
    duration: FloatArray
    demand: FloatArray
    instances: IntArray
    job: IntArray
    job_names: tuple[str, ...] = ()
    """The trace's own job id of each dense job index."""
    tenant: tuple[str, ...] = ()
    """Each task's tenant, where the trace names one (the generic CSV)."""
    priority: IntArray | None = None
    """Each task's priority, where the trace gives one (the generic CSV)."""

    def __post_init__(self) -> None:
        # CPU and memory on the books' exact grid (boson_shared/scheduling/amounts.py).
        object.__setattr__(self, "demand", grid_columns(self.demand))

    @property
    def tasks(self) -> int:
        return int(self.submit.shape[0])

    @property
    def jobs(self) -> int:
        return int(self.job.max()) + 1 if self.job.size else 0


@dataclass(frozen=True)
class Cluster:
    """Nodes with their capacity (n, 3) over (cpu, memory, gpu)."""

    node_ids: tuple[str, ...]
    capacity: FloatArray

    def __post_init__(self) -> None:
        # CPU and memory on the books' exact grid (boson_shared/scheduling/amounts.py).
        object.__setattr__(self, "capacity", grid_columns(self.capacity))


@dataclass(frozen=True)
class NodeEvents:
    """Node availability changes sorted by time; ``node`` indexes the cluster."""

    time: FloatArray
    node: IntArray
    up: BoolArray

    @staticmethod
    def empty() -> NodeEvents:
        return NodeEvents(np.zeros(0, np.float64), np.zeros(0, np.int64), np.zeros(0, np.bool_))


@dataclass
class Skipped:
    """Rows (and, for tasks, instances) left out, counted by reason."""

    rows: Counter[str] = field(default_factory=Counter)
    instances: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, instances: int = 0) -> None:
        self.rows[reason] += 1
        self.instances[reason] += instances

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class Trace:
    """Everything the simulator replays, plus what was left out and why."""

    workload: Workload
    cluster: Cluster
    events: NodeEvents
    skipped: Skipped


__all__ = ["Cluster", "NodeEvents", "Skipped", "Trace", "Workload"]
