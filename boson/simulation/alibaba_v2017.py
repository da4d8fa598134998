"""The Alibaba cluster-trace-v2017 reader (``batch_task`` + ``server_event``).

Units: a ``plan_cpu`` of 100 is one core, so requests are divided by 100 and a
machine's ``cpus`` (64) is its CPU capacity in cores; ``plan_mem`` and
``mem_norm`` share one normalised scale and are used as they are. GPU is 0. A
row is usable only if its ``status`` is ``Terminated`` (the only status whose
``task_end_time - task_create_time`` is a clean duration), both requests are
present and the end is not before the start. Each ``softerror`` makes the
machine unavailable for :data:`SOFTERROR_DOWNTIME_S` seconds; overlapping
outages of one machine are merged into one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

import numpy as np

from boson.simulation.trace_parsing import TaskRows, require, sorted_events, to_number
from boson.simulation.trace_types import Cluster, NodeEvents, Skipped, Workload

SOFTERROR_DOWNTIME_S = 600.0
"""How long an Alibaba ``softerror`` keeps a machine out: the trace records the
event, not how long it lasted, so the model assumes ten minutes."""

ALIBABA_CPU_UNITS_PER_CORE = 100.0


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
    return cluster, sorted_events(times, nodes, ups)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for down, up in sorted(spans):
        if merged and down <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], up))
        else:
            merged.append((down, up))
    return merged


__all__ = [
    "ALIBABA_CPU_UNITS_PER_CORE",
    "SOFTERROR_DOWNTIME_S",
    "parse_alibaba_servers",
    "parse_alibaba_tasks",
]
