"""The generic CSV trace reader: a header row, columns by name, extra columns ignored.

* tasks: ``submit_time,duration,cpu,memory[,gpu][,job_id][,instances]
  [,tenant][,priority]`` — seconds and per-instance requests in the nodes'
  units; a missing ``job_id`` makes every task its own job, a missing
  ``instances`` means 1, a missing ``tenant`` is ``default`` and a missing
  ``priority`` 0 (an integer from −1000 to 1000; others are skipped as
  "bad priority").
* nodes: ``node_id,cpu,memory[,gpu]``.
* events: ``time,node_id,event`` with ``event`` one of ``down`` / ``up``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping

import numpy as np

from boson.simulation.trace_parsing import TaskRows, require, sorted_events, to_number
from boson.simulation.trace_types import Cluster, NodeEvents, Skipped, Workload
from boson_shared.scheduling.tenants import (
    DEFAULT_PRIORITY,
    DEFAULT_TENANT,
    PRIORITY_MAX,
    PRIORITY_MIN,
)


def _priority(text: str | None) -> int | None:
    """A priority cell: empty means the default; None if not an integer in range."""
    if text is None or not text.strip():
        return DEFAULT_PRIORITY
    try:
        value = int(text)
    except ValueError:
        return None
    return value if PRIORITY_MIN <= value <= PRIORITY_MAX else None


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
    return sorted_events(times, nodes, ups)


__all__ = ["parse_csv_events", "parse_csv_nodes", "parse_csv_tasks"]
