"""``boson simulate``: replay a cluster trace through Boson's placement and the baselines.

The trace is parsed by :mod:`boson.simulation.traces`, replayed by
:mod:`boson.simulation.engine` once per strategy, and judged by
:mod:`boson.simulation.metrics`; this module only reads the options,
prints the table (or JSON) and, with ``--plot``, writes the charts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from boson.simulation.metrics import Metrics, Recorder, offered_load
from boson.simulation.policies import compare, make_policy, policy_names
from boson.simulation.scale import factor_for_load, scale_cluster
from boson.simulation.traces import Cluster, Trace, load_trace
from boson_shared.errors import ConfigError
from boson_shared.scheduling.probation import PROBATION_S

COLUMNS = (
    ("strategy", "strategy"),
    ("JCT mean", "jct_mean"),
    ("JCT p95", "jct_p95"),
    ("JCT p99", "jct_p99"),
    ("wait mean", "delay_mean"),
    ("wait p99", "delay_p99"),
    ("slowdown", "slowdown_mean"),
    ("util cpu", "util_cpu"),
    ("util mem", "util_mem"),
    ("frag", "fragmentation"),
    ("CV", "imbalance_cv"),
    ("Jain", "jain"),
    ("re-placed", "replaced"),
    ("makespan/LB", "makespan_ratio"),
    ("wall s", "wall_seconds"),
)


def number_text(value: float) -> str:
    """Three decimals, three significant digits below 0.1 (fragmentation is
    ~0.001, where three decimals would hide the differences that matter)."""
    if abs(value) >= 10:
        return f"{value:.0f}"
    if value == 0 or abs(value) >= 0.1:
        return f"{value:.3f}"
    return f"{value:.3g}"


def _cells(m: Metrics) -> list[str]:
    values: dict[str, object] = m.as_dict()
    values["util_cpu"], values["util_mem"] = m.utilisation[0], m.utilisation[1]
    out = []
    for _, key in COLUMNS:
        value = values[key]
        if isinstance(value, float):
            out.append(number_text(value))
        else:
            out.append(str(value))
    return out


def render_table(title: str, results: Sequence[Metrics]) -> Table:
    """The comparison table: times in seconds, shares as fractions."""
    table = Table(title=title, title_justify="left")
    for header, _ in COLUMNS:
        table.add_column(header, justify="left" if header == "strategy" else "right")
    for m in results:
        table.add_row(*_cells(m))
    return table


def describe(trace: Trace, cluster: Cluster) -> list[str]:
    """What was loaded, what was left out and why, and the offered load."""
    w = trace.workload
    lines = [
        f"tasks {w.tasks:,} ({int(w.instances.sum()):,} instances, {w.jobs:,} jobs); "
        f"nodes {len(cluster.node_ids):,}; node events {trace.events.time.size}",
    ]
    for reason, rows in sorted(trace.skipped.rows.items()):
        lines.append(
            f"  left out: {rows:,} rows ({trace.skipped.instances[reason]:,} instances): {reason}"
        )
    load = offered_load(w, cluster.capacity)
    lines.append(
        "offered load: cpu {:.2f}, memory {:.2f}, gpu {:.2f}".format(*(float(x) for x in load))
    )
    return lines


def _run(args: argparse.Namespace) -> int:
    names = args.strategy or policy_names()
    if args.probation_s < 0:
        raise ConfigError(f"--probation-s must be 0 (none) or more, not {args.probation_s}")
    for name in names:
        try:
            make_policy(name)
        except KeyError as e:
            raise ConfigError(f"unknown strategy {name!r}; choose from {policy_names()}") from e
    trace = load_trace(args.tasks, args.nodes, args.events, args.format)
    cluster, events = trace.cluster, trace.events
    factor = args.nodes_scale
    if args.target_load is not None:
        factor = factor_for_load(trace.workload, cluster, args.target_load)
    if factor is not None:
        cluster, events = scale_cluster(cluster, events, factor)
    results = compare(names, trace.workload, cluster, events, args.sample_step, args.probation_s)
    if args.json:
        payload = {
            "nodes": len(cluster.node_ids),
            "skipped": {k: [v, trace.skipped.instances[k]] for k, v in trace.skipped.rows.items()},
            "offered_load": offered_load(trace.workload, cluster.capacity).tolist(),
            "results": [m.as_dict() for m, _ in results],
        }
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = Console()
        if not console.is_terminal:  # piped to a file: do not squeeze the table to 80 columns
            console = Console(width=200)
        for line in describe(trace, cluster):
            console.print(line, highlight=False)
        console.print(
            render_table("placement quality (seconds; fractions)", [m for m, _ in results])
        )
    if args.plot is not None:
        write_plots(args.plot, results)
    return 0


def write_plots(directory: Path, results: Sequence[tuple[Metrics, Recorder]]) -> list[Path]:
    """The three charts as PNGs in ``directory``; a clear error without matplotlib."""
    try:
        from boson.simulation import plots as simulate_plots
    except ImportError as e:  # matplotlib is the optional "plot" extra
        raise ConfigError("--plot needs matplotlib: pip install 'boson[plot]'") from e
    return simulate_plots.write_all(directory, results)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to the ``boson`` parser."""
    parser = subparsers.add_parser(
        "simulate",
        help="replay a cluster trace through Boson's placement and baselines",
        description=(
            "Replay a trace (Alibaba v2017 batch_task + server_event, or the generic CSV "
            "format of boson/simulation/traces.py) in simulated time through Boson's "
            "placer and balancer and the baselines, and compare them."
        ),
    )
    parser.add_argument("--tasks", type=Path, required=True, help="tasks file")
    parser.add_argument("--nodes", type=Path, required=True, help="nodes (or server_event) file")
    parser.add_argument("--events", type=Path, default=None, help="generic node events CSV")
    parser.add_argument("--format", choices=("alibaba-v2017", "csv"), default="alibaba-v2017")
    parser.add_argument(
        "--strategy",
        action="append",
        metavar="S",
        help=f"repeatable; default all of: {', '.join(policy_names())}",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--nodes-scale",
        type=float,
        default=None,
        metavar="K",
        help="multiply the number of nodes by K (keeps the failing ones)",
    )
    size.add_argument(
        "--target-load",
        type=float,
        default=None,
        metavar="L",
        help="resize so the bottleneck resource's offered load is L",
    )
    parser.add_argument("--sample-step", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--probation-s",
        type=float,
        default=PROBATION_S,
        metavar="S",
        help="Boson's policies: a node back from failing takes no new work for S seconds "
        "(doubled per recent failure; 0: none). Baselines never (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="write PNG charts to DIR (needs the 'plot' extra)",
    )
    parser.set_defaults(func=_run)


__all__ = ["COLUMNS", "describe", "register", "render_table", "write_plots"]
