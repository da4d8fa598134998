"""Tenants on a real trace: fair shares, priorities and reclaiming, three policies.

Run ``python -m benchmarks.fairness`` from the repo root (no broker).

Replays the Alibaba v2017 trace in ``../shared/traces/`` (see its README;
``--traces`` points elsewhere, e.g. from a git worktree) with the tenant
rule of :func:`boson.simulation.tenancy.alibaba_v2017_tenants` — tenant by
``job_id % 8`` (a, b, c, d weighted 4:2:1:1, quotas of every resource in the
same ratio of the pool), priority 100 for ``job_id % 20 == 0`` — on a
cluster resized so the bottleneck resource's offered load is
``--target-load`` (work waits from 1.0 on), under the three policies of
:mod:`boson.simulation.tenancy`: Boson's admission, FIFO without quotas and
strict quotas without borrowing. Prints the table of
:mod:`boson.simulation.fairness` and each target of the tenants' issue
against what was measured. ``--victims total`` has reclaim choose victims
on the pool's total instead of node by node, for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console

from boson.simulation.fairness import TenantReport, render
from boson.simulation.metrics import offered_load
from boson.simulation.policies import make_policy
from boson.simulation.scale import factor_for_load, scale_cluster
from boson.simulation.tenancy import (
    ALIBABA_HIGH_PRIORITY,
    ALIBABA_WEIGHTS,
    POLICIES,
    alibaba_v2017_tenants,
    proportional_quotas,
    run_policy,
)
from boson.simulation.traces import load_trace
from boson_shared.scheduling.admission import DEFAULT_PREEMPT_GRACE_S

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces"


def targets(reports: dict[str, TenantReport]) -> list[tuple[str, str, bool]]:
    """Each target against the measured figure: (target, measured, met)."""
    boson, fifo = reports["boson"], reports["fifo"]
    high = ALIBABA_HIGH_PRIORITY
    cut = 1 - boson.p99_delay[high] / fifo.p99_delay[high] if fifo.p99_delay[high] else 0.0
    worst = max(abs(e) for e in boson.relative_error)
    reach = max((x for x in boson.reach_worst if x == x), default=float("nan"))
    gap = abs(boson.utilisation - fifo.utilisation) * 100
    return [
        ("high-priority p99 wait ≥ 50 % below FIFO's", f"{cut:.0%} below", cut >= 0.5),
        ("share within ±10 % of entitlement", f"worst {worst:+.0%}", worst <= 0.10),
        ("Jain's index ≥ 0.95 while all backlogged", f"{boson.jain:.3f}", boson.jain >= 0.95),
        ("quota reached within 60 s of starting", f"worst {reach:.0f} s", reach <= 60),
        (
            "(all run long) quota reached again within 60 s, every episode",
            f"p99 {boson.below_p99:.0f} s, worst {boson.below_worst:.0f} s",
            boson.below_worst <= 60,
        ),
        ("utilisation within 2 points of FIFO's", f"{gap:.1f} points", gap <= 2),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=TRACES, help="folder of the trace files")
    parser.add_argument("--target-load", type=float, default=1.2, metavar="L")
    parser.add_argument("--grace-s", type=float, default=DEFAULT_PREEMPT_GRACE_S)
    parser.add_argument("--sample-step", type=float, default=10.0)
    parser.add_argument("--policy", action="append", choices=POLICIES, help="default: all")
    parser.add_argument(
        "--victims",
        choices=("nodes", "total"),
        default="nodes",
        help="reclaim chooses victims node by node (default) or on the pool's total",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    trace = load_trace(
        args.traces / "alibaba_v2017_batch_task_0-7200s.csv",
        args.traces / "alibaba_v2017_server_event.csv",
    )
    factor = factor_for_load(trace.workload, trace.cluster, args.target_load)
    cluster, events = scale_cluster(trace.cluster, trace.events, factor)
    tenancy = alibaba_v2017_tenants(trace.workload)
    pool = tuple(cluster.capacity.sum(axis=0).tolist())
    config = proportional_quotas(ALIBABA_WEIGHTS, pool)
    placer = make_policy("binpack-fgd").placer
    reports: dict[str, TenantReport] = {}
    for policy in args.policy or POLICIES:
        reports[policy], _ = run_policy(
            policy,
            trace.workload,
            cluster,
            events,
            tenancy,
            config,
            placer,
            grace_s=args.grace_s,
            sample_step=args.sample_step,
            node_victims=args.victims == "nodes",
        )
    load = offered_load(trace.workload, cluster.capacity)
    if args.json:
        json.dump(
            {
                "nodes": len(cluster.node_ids),
                "offered_load": load.tolist(),
                "reports": [r.as_dict() for r in reports.values()],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    console = Console(width=220)
    console.print(
        f"{len(cluster.node_ids)} nodes; offered load cpu {load[0]:.2f}, memory {load[1]:.2f}; "
        f"grace {args.grace_s:g} s; victims chosen on the "
        + ("nodes" if args.victims == "nodes" else "pool's total"),
        highlight=False,
    )
    bottleneck = int(load.argmax())
    span = float(trace.workload.submit.max() - trace.workload.submit.min())
    work = trace.workload.demand[:, bottleneck] * trace.workload.instances
    work = work * trace.workload.duration
    owners = np.asarray(tenancy.tenant)
    offered = {
        name: float(work[owners == name].sum()) / (pool[bottleneck] * span)
        for name in ALIBABA_WEIGHTS
    }
    console.print(
        "offered load of the bottleneck by tenant (of the whole pool): "
        + ", ".join(f"{name} {value:.2f}" for name, value in offered.items()),
        highlight=False,
    )
    console.print(render(list(reports.values())))
    if {"boson", "fifo"} <= reports.keys():
        for target, measured, met in targets(reports):
            console.print(f"{'met' if met else 'NOT met'}: {target}: {measured}", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
