"""Placement quality on the Alibaba GPU trace (v2023): binpack-fgd against k8s-default.

Run: ``.venv/bin/python benchmarks/gpu_quality.py [--loads 0.7,0.9,1.0] [--from-day D]
[--strategy S] [--baseline B] [--traces DIR]``.

Model (the simulator's, ``boson/simulation/``): each pod is one task of one
instance, arriving at ``creation_time`` and holding its request for
``deletion_time − scheduled_time``; cores, GiB and GPUs, a request below one
GPU being a share of one device (``boson/simulation/gpu_trace.py``). Pods the
real cluster never scheduled are left out and counted; GPU memory is not in
the trace. Boson's policy reserves for the head of the waiting order and
backfills around it (``boson_shared/scheduling/head_reservation.py``); the
baseline, as kube-scheduler, does not.

Window: pods created from day ``--from-day`` (default 110) on. The trace's
first months hold a few dozen pods, most of them running for weeks; arrivals
are dense only in its last weeks. Offered load is defined over the arrival
span (``boson/simulation/metrics.py``), so over the whole trace a 90 % load
would be a cluster sized for the sparse months and overloaded for weeks in
the dense ones. Pods created before the window are left out, and counted.

Sizes: for each load the cluster is cut from the trace's node list keeping
its mix of node shapes (``boson/simulation/scale.py``), at the node count
whose GPU load comes closest; a warning says when whole nodes miss the load
by more than 5 %.

Judged per load, against these targets: GPU fragmentation at least 10 % lower,
mean queueing delay at least 10 % lower, the longest queueing delay at most
half the baseline's, mean JCT no worse, and no instance left never placed
that fits an empty node.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from boson.simulation.metrics import Metrics, offered_load  # noqa: E402
from boson.simulation.policies import compare  # noqa: E402
from boson.simulation.report import describe, number_text  # noqa: E402
from boson.simulation.scale import resize_for_load  # noqa: E402
from boson.simulation.trace_types import Trace, Workload  # noqa: E402
from boson.simulation.traces import load_trace  # noqa: E402

TRACES = REPO.parent / "shared" / "traces"
DAY_S = 86_400.0
SAMPLE_STEP_S = 600.0
"""Seconds between samples of the time-averaged metrics (the window spans weeks)."""


def window(trace: Trace, from_day: float) -> tuple[Trace, int]:
    """The trace with only the pods created from ``from_day`` on; how many were left out."""
    w = trace.workload
    keep = w.submit >= from_day * DAY_S
    _, job = np.unique(w.job[keep], return_inverse=True)
    kept = Workload(
        w.submit[keep], w.duration[keep], w.demand[keep], w.instances[keep], job.astype(np.int64)
    )
    return Trace(kept, trace.cluster, trace.events, trace.skipped), int((~keep).sum())


def verdict(ours: Metrics, theirs: Metrics) -> list[tuple[str, str, str, str]]:
    """Rows of (criterion, ours, theirs, met?)."""

    def gain(a: float, b: float) -> float:
        return (b - a) / b if b else 0.0

    frag = gain(ours.gpu_fragmentation, theirs.gpu_fragmentation)
    delay = gain(ours.delay_mean, theirs.delay_mean)
    longest = ours.delay_max / theirs.delay_max if theirs.delay_max else 0.0
    jct = gain(ours.jct_mean, theirs.jct_mean)

    def ok(good: bool) -> str:
        return "met" if good else "NOT met"

    return [
        (
            "GPU fragmentation, per device (≥10 % lower)",
            number_text(ours.gpu_fragmentation),
            number_text(theirs.gpu_fragmentation),
            f"{frag:+.1%} {ok(frag >= 0.10)}",
        ),
        (
            "mean queueing delay s (≥10 % lower)",
            number_text(ours.delay_mean),
            number_text(theirs.delay_mean),
            f"{delay:+.1%} {ok(delay >= 0.10)}",
        ),
        (
            "longest queueing delay s (≤ half)",
            number_text(ours.delay_max),
            number_text(theirs.delay_max),
            f"×{longest:.2f} {ok(longest <= 0.5)}",
        ),
        (
            "mean JCT s (no worse)",
            number_text(ours.jct_mean),
            number_text(theirs.jct_mean),
            f"{jct:+.1%} {ok(jct >= 0)}",
        ),
        (
            "never placed, fits an empty node (none)",
            str(ours.never_placed),
            str(theirs.never_placed),
            ok(ours.never_placed == 0),
        ),
        (
            "fragmentation of the bottleneck, whole node",
            number_text(ours.fragmentation),
            number_text(theirs.fragmentation),
            "",
        ),
        (
            "never placeable: fits no node",
            str(ours.never_fits),
            str(theirs.never_fits),
            "",
        ),
        (
            "p99 delay s small/medium/large",
            _by_size(ours),
            _by_size(theirs),
            "",
        ),
        (
            "utilisation cpu/mem/gpu",
            "/".join(f"{u:.3f}" for u in ours.utilisation),
            "/".join(f"{u:.3f}" for u in theirs.utilisation),
            "",
        ),
        ("wall s", f"{ours.wall_seconds:.0f}", f"{theirs.wall_seconds:.0f}", ""),
    ]


def _by_size(m: Metrics) -> str:
    return "/".join(number_text(v) for v in m.delay_p99_by_size.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0.7,0.9,1.0", help="GPU offered loads")
    parser.add_argument("--from-day", type=float, default=110.0, help="window start (days)")
    parser.add_argument("--strategy", default="binpack-fgd", help="Boson's policy")
    parser.add_argument("--baseline", default="k8s-default")
    parser.add_argument("--traces", type=Path, default=TRACES, help="the traces' directory")
    args = parser.parse_args()
    console = Console(width=160)
    full = load_trace(
        args.traces / "alibaba_gpu_v2023_pods_before_day135.csv",
        args.traces / "alibaba_gpu_v2023_nodes.csv",
        fmt="alibaba-gpu-v2023",
    )
    trace, before = window(full, args.from_day)
    console.print(
        f"pods created before day {args.from_day:g} left out: {before:,}", highlight=False
    )
    for load in (float(x) for x in args.loads.split(",")):
        resized = resize_for_load(trace.workload, trace.cluster, trace.events, load)
        console.print()
        console.print(f"[bold]GPU offered {load:.0%}[/bold]")
        for line in describe(trace, resized.cluster):
            console.print(line, highlight=False)
        shapes = np.unique(resized.cluster.capacity, axis=0, return_counts=True)
        console.print(
            "nodes (cores, GiB, GPUs) × count: "
            + ", ".join(
                f"({c:g}, {m:g}, {g:g})×{n}"
                for (c, m, g), n in zip(shapes[0].tolist(), shapes[1].tolist(), strict=True)
            ),
            highlight=False,
        )
        warning = resized.warning()
        if warning:
            console.print(warning, highlight=False)
        results = compare(
            [args.strategy, args.baseline],
            trace.workload,
            resized.cluster,
            resized.events,
            SAMPLE_STEP_S,
        )
        ours, theirs = (m for m, _ in results)
        gpu = offered_load(trace.workload, resized.cluster.capacity)[2]
        table = Table(title=f"GPU offered {gpu:.3f}", title_justify="left")
        for header in ("", args.strategy, args.baseline, "verdict"):
            table.add_column(header, justify="left" if not header else "right")
        for row in verdict(ours, theirs):
            table.add_row(*row)
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
