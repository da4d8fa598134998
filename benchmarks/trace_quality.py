"""Placement quality on the Alibaba v2017 trace: every strategy and baseline, two sizes.

Run: ``.venv/bin/python benchmarks/trace_quality.py [--plot] [--strategy S ...]``.

Model (the simulator's, see ``boson/simulation/engine.py``): each of a
task's instances holds the task's per-instance request (``plan_cpu`` ÷ 100
cores, ``plan_mem`` in ``mem_norm`` units) from its placement for the task's
whole duration (``task_end_time - task_create_time``, which includes the time
the real cluster made it wait, so the model is pessimistic). Only
``Terminated`` rows have a clean duration; the others, and rows with empty
requests, are left out and counted. Machines: 64 cores and their
``mem_norm``; each ``softerror`` takes a machine away for 10 minutes, and its
running instances restart elsewhere from scratch.

Boson's default is ``binpack-fgd`` with rebalancing (the scheduler's default
strategy: binpack that first of all does not strand the bottleneck
resource, see docs/design.md#placement and ``boson_shared/scheduling/scores.py``). Plain ``binpack``
(faster on very large clusters) and ``remnant`` (binpack minus a
stranded-capacity penalty), both with rebalancing, are judged too. Boson's
policies put a node back from failing on probation
(``boson_shared/scheduling/probation.py``); the baselines do not.

Sizes: the real cluster (1,313 machines), and the size at which the offered
load on the bottleneck resource (memory) is 90% — more machines, not fewer:
copies of the real ones, the failing machines kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from boson.simulation.metrics import Metrics, offered_load  # noqa: E402
from boson.simulation.policies import compare, policy_names  # noqa: E402
from boson.simulation.report import describe, render_table, write_plots  # noqa: E402
from boson.simulation.scale import factor_for_load, scale_cluster  # noqa: E402
from boson.simulation.trace_types import Trace  # noqa: E402
from boson.simulation.traces import load_trace  # noqa: E402

TRACES = REPO.parent / "shared" / "traces"
TASKS = TRACES / "alibaba_v2017_batch_task_0-7200s.csv"
SERVERS = TRACES / "alibaba_v2017_server_event.csv"
TARGET_LOAD = 0.9
DEFAULT = "binpack-fgd+rebalance"
ALTERNATIVES = ("binpack+rebalance", "remnant+rebalance")
BASELINE = "k8s-default"


def _verdict(results: list[Metrics], name: str = DEFAULT) -> list[str]:
    by = {m.strategy: m for m in results}
    if name not in by or BASELINE not in by:
        return []
    ours, theirs = by[name], by[BASELINE]
    lines = [f"{name} against {BASELINE} (target: ≥10% better; makespan ≤ 1.02 × bound):"]
    for label, key in (
        ("mean JCT", "jct_mean"),
        ("p99 queueing delay", "delay_p99"),
        ("fragmentation", "fragmentation"),
    ):
        a, b = float(getattr(ours, key)), float(getattr(theirs, key))
        gain = (b - a) / b if b else 0.0
        ok = "met" if gain >= 0.10 else "NOT met"
        lines.append(f"  {label}: {a:.4g} vs {b:.4g} → {gain:+.1%} ({ok})")
    # Where the fragmentation comes from (both parts are shares of the total).
    lines.append(
        "    of which while work waited in the backlog: "
        f"{ours.fragmentation_waiting:.4g} vs {theirs.fragmentation_waiting:.4g}; "
        "on nodes with memory for the median but short of cpu: "
        f"{ours.fragmentation_other_short:.4g} vs {theirs.fragmentation_other_short:.4g}"
    )
    ratio = ours.makespan_ratio
    lines.append(
        f"  makespan {ours.makespan:.0f} s vs bound {ours.makespan_bound:.0f} s → "
        f"{ratio:.4f} ({'met' if ratio <= 1.02 else 'NOT met'})"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", action="append", help="default: all")
    parser.add_argument("--plot", action="store_true", help="write docs/sim-*.png (90%% load)")
    parser.add_argument("--size", choices=("real", "target", "both"), default="both")
    parser.add_argument(
        "--no-reservation",
        action="store_true",
        help="no head reservation for Boson's policies (to measure what it changes)",
    )
    args = parser.parse_args()
    names = args.strategy or policy_names()
    console = Console(width=200)
    trace = load_trace(TASKS, SERVERS)
    console.print(__doc__.split("\n\n", 2)[2], highlight=False)
    load = offered_load(trace.workload, trace.cluster.capacity)
    console.print(
        f"Units check: per-instance cpu median {float(_median(trace, 0)):.2f} cores of 64; "
        f"memory median {float(_median(trace, 1)):.4f} of ~0.69 per machine. "
        f"Offered load at real size: cpu {load[0]:.2f}, memory {load[1]:.2f} → memory is "
        f"the bottleneck; {TARGET_LOAD:.0%} needs ×{load.max() / TARGET_LOAD:.2f} machines.",
        highlight=False,
    )
    factor = factor_for_load(trace.workload, trace.cluster, TARGET_LOAD)
    sizes = [("at the real size", 1.0), (f"at {TARGET_LOAD:.0%} offered load", factor)]
    sizes = [s for s in sizes if args.size == "both" or (args.size == "real") == (s[1] == 1.0)]
    for label, k in sizes:
        cluster, events = scale_cluster(trace.cluster, trace.events, k)
        console.print()
        for line in describe(trace, cluster):
            console.print(line, highlight=False)
        results = compare(
            names, trace.workload, cluster, events, reservation=not args.no_reservation
        )
        console.print(
            render_table(f"{label}: {len(cluster.node_ids):,} nodes", [m for m, _ in results])
        )
        for name in (DEFAULT, *ALTERNATIVES):
            for line in _verdict([m for m, _ in results], name):
                console.print(line, highlight=False)
        if args.plot and k != 1.0:
            for path in write_plots(REPO / "docs", results):
                console.print(f"wrote {path.relative_to(REPO)}", highlight=False)
    return 0


def _median(trace: Trace, dim: int) -> float:
    w = trace.workload
    return float(np.median(np.repeat(w.demand[:, dim], w.instances)))


if __name__ == "__main__":
    sys.exit(main())
