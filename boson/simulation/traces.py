"""Cluster-trace loaders for the simulator: parsing only, numpy arrays out.

Three formats are understood.

**Alibaba cluster-trace-v2017** (``batch_task`` + ``server_event``). Units: a
``plan_cpu`` of 100 is one core, so requests are divided by 100 and a machine's
``cpus`` (64) is its CPU capacity in cores; ``plan_mem`` and ``mem_norm`` share
one normalised scale and are used as they are. GPU is 0. A row is usable only
if its ``status`` is ``Terminated`` (the only status whose
``task_end_time - task_create_time`` is a clean duration), both requests are
present and the end is not before the start. Each ``softerror`` makes the
machine unavailable for :data:`SOFTERROR_DOWNTIME_S` seconds; overlapping
outages of one machine are merged into one.

**Alibaba GPU cluster trace v2023**: see :mod:`boson.simulation.gpu_trace`.

**Generic CSV** (a header row; columns by name, extra columns ignored):

* tasks: ``submit_time,duration,cpu,memory[,gpu][,job_id][,instances]
  [,tenant][,priority]`` — seconds and per-instance requests in the nodes'
  units; a missing ``job_id`` makes every task its own job, a missing
  ``instances`` means 1, a missing ``tenant`` is ``default`` and a missing
  ``priority`` 0 (an integer from −1000 to 1000; others are skipped as
  "bad priority").
* nodes: ``node_id,cpu,memory[,gpu]``.
* events: ``time,node_id,event`` with ``event`` one of ``down`` / ``up``.

Unusable rows are never dropped silently: :class:`Skipped` counts them (and
their instances) by reason, and the CLI reports the counts.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boson.simulation.table import BoolArray, FloatArray, IntArray
from boson_shared.errors import ConfigError
from boson_shared.scheduling.amounts import grid_columns
from boson_shared.scheduling.tenants import (
    DEFAULT_PRIORITY,
    DEFAULT_TENANT,
    PRIORITY_MAX,
    PRIORITY_MIN,
)

SOFTERROR_DOWNTIME_S = 600.0
"""How long an Alibaba ``softerror`` keeps a machine out: the trace records the
event, not how long it lasted, so the model assumes ten minutes."""

ALIBABA_CPU_UNITS_PER_CORE = 100.0
FORMATS = ("alibaba-v2017", "alibaba-gpu-v2023", "csv")
"""The trace formats :func:`load_trace` reads."""


class TraceFormatError(ConfigError):
    """A trace file lacks a required column or is not the format named."""


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


def require(header: Iterable[str] | None, needed: Iterable[str], what: str) -> None:
    have = set(header or ())
    missing = [c for c in needed if c not in have]
    if missing:
        raise TraceFormatError(f"{what}: missing column(s) {', '.join(missing)}")


def to_number(text: str | None) -> float | None:
    """Parse a number; None for an empty or malformed cell (the caller counts it)."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _priority(text: str | None) -> int | None:
    """A priority cell: empty means the default; None if not an integer in range."""
    if text is None or not text.strip():
        return DEFAULT_PRIORITY
    try:
        value = int(text)
    except ValueError:
        return None
    return value if PRIORITY_MIN <= value <= PRIORITY_MAX else None


class TaskRows:
    """Accumulates usable task rows; dense job indices in first-seen order."""

    def __init__(self) -> None:
        self.submit: list[float] = []
        self.duration: list[float] = []
        self.demand: list[tuple[float, float, float]] = []
        self.instances: list[int] = []
        self.job: list[int] = []
        self.tenant: list[str] = []
        self.priority: list[int] = []
        self._jobs: dict[str, int] = {}

    def add(
        self,
        submit: float,
        duration: float,
        demand: tuple[float, float, float],
        instances: int,
        job_key: str,
        tenant: str = DEFAULT_TENANT,
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        self.tenant.append(tenant)
        self.priority.append(priority)
        self.submit.append(submit)
        self.duration.append(duration)
        self.demand.append(demand)
        self.instances.append(instances)
        self.job.append(self._jobs.setdefault(job_key, len(self._jobs)))

    def build(self) -> Workload:
        demand = np.asarray(self.demand, np.float64).reshape(-1, 3)
        return Workload(
            submit=np.asarray(self.submit, np.float64),
            duration=np.asarray(self.duration, np.float64),
            demand=demand,
            instances=np.asarray(self.instances, np.int64),
            job=np.asarray(self.job, np.int64),
            job_names=tuple(self._jobs),
            tenant=tuple(self.tenant) if set(self.tenant) - {DEFAULT_TENANT} else (),
            priority=np.asarray(self.priority, np.int64) if any(self.priority) else None,
        )


def parse_alibaba_tasks(lines: Iterable[str], skipped: Skipped) -> Workload:
    """Parse ``batch_task`` rows; unusable ones are counted in ``skipped``."""
    reader = csv.DictReader(lines)
    require(
        reader.fieldnames,
        (
            "task_create_time",
            "task_end_time",
            "job_id",
            "number_of_instances",
            "status",
            "plan_cpu",
            "plan_mem",
        ),
        "alibaba batch_task",
    )
    rows = TaskRows()
    for row in reader:
        count = to_number(row["number_of_instances"])
        instances = int(count) if count is not None and count > 0 else 0
        start, end = to_number(row["task_create_time"]), to_number(row["task_end_time"])
        cpu, mem = to_number(row["plan_cpu"]), to_number(row["plan_mem"])
        # The order of the checks fixes which reason a row with several faults
        # is counted under: status first, since it decides whether the
        # duration means anything at all.
        if row["status"] != "Terminated":
            skipped.add(f"status {row['status'] or '(empty)'}", instances)
        elif cpu is None or mem is None:
            skipped.add("empty request", instances)
        elif start is None or end is None:
            skipped.add("empty time", instances)
        elif end < start:
            skipped.add("end before start", instances)
        elif instances == 0:
            skipped.add("no instances", 0)
        elif cpu < 0 or mem < 0:
            skipped.add("negative request", instances)
        else:
            rows.add(
                start,
                end - start,
                (cpu / ALIBABA_CPU_UNITS_PER_CORE, mem, 0.0),
                instances,
                row["job_id"],
            )
    return rows.build()


def parse_alibaba_servers(
    lines: Iterable[str], skipped: Skipped, downtime: float = SOFTERROR_DOWNTIME_S
) -> tuple[Cluster, NodeEvents]:
    """Parse ``server_event``: capacity from ``add``, outages from ``softerror``.

    A machine added after time 0 starts down and comes up at its ``add``.
    """
    reader = csv.DictReader(lines)
    require(
        reader.fieldnames,
        ("timestamp", "machine_id", "event_type", "cpus", "mem_norm"),
        "alibaba server_event",
    )
    ids: dict[str, int] = {}
    capacity: list[tuple[float, float, float]] = []
    added_at: list[float] = []
    outages: dict[int, list[tuple[float, float]]] = {}
    pending: list[tuple[float, str]] = []
    for row in reader:
        when = to_number(row["timestamp"])
        kind = row["event_type"]
        if when is None:
            skipped.add("event without time")
        elif kind == "add":
            cpus, mem = to_number(row["cpus"]), to_number(row["mem_norm"])
            if cpus is None or mem is None or row["machine_id"] in ids:
                skipped.add("unusable add")
                continue
            ids[row["machine_id"]] = len(capacity)
            capacity.append((cpus, mem, 0.0))
            added_at.append(when)
        elif kind == "softerror":
            pending.append((when, row["machine_id"]))
        else:
            skipped.add(f"event {kind or '(empty)'}")
    for when, machine in pending:
        if machine not in ids:
            skipped.add("event for unknown machine")
            continue
        outages.setdefault(ids[machine], []).append((when, when + downtime))
    times: list[float] = []
    nodes: list[int] = []
    ups: list[bool] = []
    for node, start in enumerate(added_at):
        if start > 0:
            times += [0.0, start]
            nodes += [node, node]
            ups += [False, True]
    for node, spans in outages.items():
        for down, up in _merge(spans):
            times += [down, up]
            nodes += [node, node]
            ups += [False, True]
    cluster = Cluster(tuple(ids), np.asarray(capacity, np.float64).reshape(-1, 3))
    return cluster, _sorted_events(times, nodes, ups)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for down, up in sorted(spans):
        if merged and down <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], up))
        else:
            merged.append((down, up))
    return merged


def _sorted_events(times: list[float], nodes: list[int], ups: list[bool]) -> NodeEvents:
    t = np.asarray(times, np.float64)
    # Stable on time so a down and an up at the same instant keep file order.
    order = np.argsort(t, kind="stable")
    return NodeEvents(
        t[order], np.asarray(nodes, np.int64)[order], np.asarray(ups, np.bool_)[order]
    )


def parse_csv_tasks(lines: Iterable[str], skipped: Skipped) -> Workload:
    """Parse the generic tasks CSV (see the module docstring)."""
    reader = csv.DictReader(lines)
    require(reader.fieldnames, ("submit_time", "duration", "cpu", "memory"), "tasks csv")
    rows = TaskRows()
    for number, row in enumerate(reader):
        count = to_number(row.get("instances")) if row.get("instances") else 1.0
        instances = int(count) if count is not None and count > 0 else 0
        submit, duration = to_number(row["submit_time"]), to_number(row["duration"])
        cpu, mem = to_number(row["cpu"]), to_number(row["memory"])
        gpu = to_number(row.get("gpu")) if row.get("gpu") else 0.0
        tenant = (row.get("tenant") or "").strip() or DEFAULT_TENANT
        priority = _priority(row.get("priority"))
        if cpu is None or mem is None or gpu is None:
            skipped.add("empty request", instances)
        elif priority is None:
            skipped.add("bad priority", instances)
        elif submit is None or duration is None:
            skipped.add("empty time", instances)
        elif duration < 0:
            skipped.add("end before start", instances)
        elif instances == 0:
            skipped.add("no instances", 0)
        elif min(cpu, mem, gpu) < 0:
            skipped.add("negative request", instances)
        else:
            job = row.get("job_id") or f"task-{number}"
            rows.add(submit, duration, (cpu, mem, gpu), instances, job, tenant, priority)
    return rows.build()


def parse_csv_nodes(lines: Iterable[str], skipped: Skipped) -> Cluster:
    """Parse the generic nodes CSV."""
    reader = csv.DictReader(lines)
    require(reader.fieldnames, ("node_id", "cpu", "memory"), "nodes csv")
    ids: list[str] = []
    capacity: list[tuple[float, float, float]] = []
    seen: set[str] = set()
    for row in reader:
        cpu, mem = to_number(row["cpu"]), to_number(row["memory"])
        gpu = to_number(row.get("gpu")) if row.get("gpu") else 0.0
        if cpu is None or mem is None or gpu is None or row["node_id"] in seen:
            skipped.add("unusable node")
            continue
        seen.add(row["node_id"])
        ids.append(row["node_id"])
        capacity.append((cpu, mem, gpu))
    return Cluster(tuple(ids), np.asarray(capacity, np.float64).reshape(-1, 3))


def parse_csv_events(lines: Iterable[str], cluster: Cluster, skipped: Skipped) -> NodeEvents:
    """Parse the generic events CSV against ``cluster``'s node ids."""
    reader = csv.DictReader(lines)
    require(reader.fieldnames, ("time", "node_id", "event"), "events csv")
    index: Mapping[str, int] = {node: i for i, node in enumerate(cluster.node_ids)}
    times: list[float] = []
    nodes: list[int] = []
    ups: list[bool] = []
    for row in reader:
        when, kind = to_number(row["time"]), row["event"].strip().lower()
        if when is None or kind not in ("down", "up"):
            skipped.add("unusable event")
        elif row["node_id"] not in index:
            skipped.add("event for unknown machine")
        else:
            times.append(when)
            nodes.append(index[row["node_id"]])
            ups.append(kind == "up")
    return _sorted_events(times, nodes, ups)


def load_trace(
    tasks: Path, nodes: Path, events: Path | None = None, fmt: str = "alibaba-v2017"
) -> Trace:
    """Read the files a user names and parse them in the given format.

    For ``alibaba-v2017`` the ``nodes`` file is ``server_event`` and holds the
    events too; ``events`` is then ignored unless given explicitly as a
    generic events CSV. For ``alibaba-gpu-v2023`` ``tasks`` is the pods file
    and ``nodes`` the node list.
    """
    from boson.simulation import gpu_trace  # it builds on this module

    if fmt not in FORMATS:
        raise TraceFormatError(f"unknown trace format {fmt!r}; choose from {', '.join(FORMATS)}")
    skipped = Skipped()
    with tasks.open(newline="") as fh:
        if fmt == "alibaba-v2017":
            workload = parse_alibaba_tasks(fh, skipped)
        elif fmt == "alibaba-gpu-v2023":
            workload = gpu_trace.parse_pods(fh, skipped)
        else:
            workload = parse_csv_tasks(fh, skipped)
    with nodes.open(newline="") as fh:
        if fmt == "alibaba-v2017":
            cluster, node_events = parse_alibaba_servers(fh, skipped)
        elif fmt == "alibaba-gpu-v2023":
            cluster, node_events = gpu_trace.parse_nodes(fh, skipped), NodeEvents.empty()
        else:
            cluster, node_events = parse_csv_nodes(fh, skipped), NodeEvents.empty()
    if events is not None:
        with events.open(newline="") as fh:
            node_events = parse_csv_events(fh, cluster, skipped)
    return Trace(workload, cluster, node_events, skipped)


__all__ = [
    "ALIBABA_CPU_UNITS_PER_CORE",
    "FORMATS",
    "SOFTERROR_DOWNTIME_S",
    "Cluster",
    "NodeEvents",
    "Skipped",
    "TaskRows",
    "Trace",
    "TraceFormatError",
    "Workload",
    "load_trace",
    "parse_alibaba_servers",
    "parse_alibaba_tasks",
    "parse_csv_events",
    "parse_csv_nodes",
    "parse_csv_tasks",
    "require",
    "to_number",
]
