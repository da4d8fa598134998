"""The Alibaba GPU cluster trace v2023 ("openb"): a pods file and a nodes file.

Units: cores (``cpu_milli`` ÷ 1000), GiB (``memory_mib`` ÷ 1024) and GPUs.
A pod's GPU request is ``num_gpu`` × ``gpu_milli`` ÷ 1000: below 1 it is a
share of ONE physical GPU (1 × 460 is 0.46 of one device), from 1 up whole
devices. Each pod is one task of one instance and its own job; it arrives
at ``creation_time`` and runs ``deletion_time − scheduled_time`` (the time
it held its node in the real cluster). Pods never scheduled there (no
``scheduled_time``) are dropped and counted, as are rows with unusable
numbers. GPU memory is not in the trace, and ``gpu_spec`` (allowed models)
is empty in it: both are ignored. A node's capacity is its ``cpu_milli``,
``memory_mib`` and ``gpu`` count; the trace has no node events.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

import numpy as np

from boson.simulation.trace_parsing import TaskRows, require, to_number
from boson.simulation.trace_types import Cluster, Skipped, Workload

MILLI = 1000.0
MIB_PER_GIB = 1024.0


def parse_pods(lines: Iterable[str], skipped: Skipped) -> Workload:
    """Parse the v2023 GPU trace's pods (see the module docstring)."""
    reader = csv.DictReader(lines)
    require(
        reader.fieldnames,
        (
            "name",
            "cpu_milli",
            "memory_mib",
            "num_gpu",
            "gpu_milli",
            "creation_time",
            "deletion_time",
            "scheduled_time",
        ),
        "alibaba-gpu-v2023 pods",
    )
    rows = TaskRows()
    for row in reader:
        cpu, mem = to_number(row["cpu_milli"]), to_number(row["memory_mib"])
        count, milli = to_number(row["num_gpu"]), to_number(row["gpu_milli"])
        created, deleted = to_number(row["creation_time"]), to_number(row["deletion_time"])
        scheduled = to_number(row["scheduled_time"])
        if not (row["scheduled_time"] or "").strip():
            skipped.add("never scheduled", 1)
        elif cpu is None or mem is None or count is None or milli is None:
            skipped.add("empty request", 1)
        elif created is None or deleted is None or scheduled is None:
            skipped.add("empty time", 1)
        elif deleted < scheduled:
            skipped.add("end before start", 1)
        elif min(cpu, mem, count, milli) < 0:
            skipped.add("negative request", 1)
        else:
            gpu = count * milli / MILLI
            rows.add(
                created,
                deleted - scheduled,
                (cpu / MILLI, mem / MIB_PER_GIB, gpu),
                1,
                row["name"],
            )
    return rows.build()


def parse_nodes(lines: Iterable[str], skipped: Skipped) -> Cluster:
    """Parse the v2023 GPU trace's node list, in file order."""
    reader = csv.DictReader(lines)
    require(reader.fieldnames, ("sn", "cpu_milli", "memory_mib", "gpu"), "alibaba-gpu-v2023 nodes")
    ids: list[str] = []
    capacity: list[tuple[float, float, float]] = []
    seen: set[str] = set()
    for row in reader:
        cpu, mem = to_number(row["cpu_milli"]), to_number(row["memory_mib"])
        gpu = to_number(row["gpu"]) if (row["gpu"] or "").strip() else 0.0
        if cpu is None or mem is None or gpu is None or row["sn"] in seen:
            skipped.add("unusable node")
            continue
        seen.add(row["sn"])
        ids.append(row["sn"])
        capacity.append((cpu / MILLI, mem / MIB_PER_GIB, gpu))
    return Cluster(tuple(ids), np.asarray(capacity, np.float64).reshape(-1, 3))


__all__ = ["MIB_PER_GIB", "MILLI", "parse_nodes", "parse_pods"]
