"""Cluster-trace loading for the simulator: parsing only, numpy arrays out.

Three formats are understood, each read by its own module:
**Alibaba cluster-trace-v2017** (``batch_task`` + ``server_event``) by
:mod:`boson.simulation.alibaba_v2017`, the **Alibaba GPU cluster trace v2023**
by :mod:`boson.simulation.gpu_trace`, and a **generic CSV** (tasks, nodes and
optional node events, columns by name) by :mod:`boson.simulation.csv_trace`.
What they produce is in :mod:`boson.simulation.trace_types`.

Unusable rows are never dropped silently: :class:`~boson.simulation.trace_types.Skipped`
counts them (and their instances) by reason, and the CLI reports the counts.
"""

from __future__ import annotations

from pathlib import Path

from boson.simulation import gpu_trace
from boson.simulation.alibaba_v2017 import parse_alibaba_servers, parse_alibaba_tasks
from boson.simulation.csv_trace import parse_csv_events, parse_csv_nodes, parse_csv_tasks
from boson.simulation.trace_parsing import TraceFormatError
from boson.simulation.trace_types import NodeEvents, Skipped, Trace

FORMATS = ("alibaba-v2017", "alibaba-gpu-v2023", "csv")
"""The trace formats :func:`load_trace` reads."""


def load_trace(
    tasks: Path, nodes: Path, events: Path | None = None, fmt: str = "alibaba-v2017"
) -> Trace:
    """Read the files a user names and parse them in the given format.

    For ``alibaba-v2017`` the ``nodes`` file is ``server_event`` and holds the
    events too; ``events`` is then ignored unless given explicitly as a
    generic events CSV. For ``alibaba-gpu-v2023`` ``tasks`` is the pods file
    and ``nodes`` the node list.
    """
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


__all__ = ["FORMATS", "load_trace"]
