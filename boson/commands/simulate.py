"""``boson simulate``: replay a cluster trace through Boson's placement and the baselines.

The trace is parsed by :mod:`boson.simulation.traces`, replayed by
:mod:`boson.simulation.engine` once per strategy, and judged by
:mod:`boson.simulation.metrics`; this module only reads the options and
prints the table of :mod:`boson.simulation.report` (or JSON) and, with
``--plot``, writes its charts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from boson.simulation.fairness import render as render_tenants
from boson.simulation.metrics import offered_load
from boson.simulation.policies import compare, make_policy, policy_names
from boson.simulation.report import describe, render_table, write_plots
from boson.simulation.scale import resize_for_load, scale_cluster
from boson.simulation.tenancy import (
    POLICIES,
    alibaba_v2017_tenants,
    run_policy,
    trace_tenants,
)
from boson.simulation.trace_types import Cluster, NodeEvents, Trace
from boson.simulation.traces import FORMATS, load_trace
from boson_shared.errors import ConfigError
from boson_shared.scheduling.admission import DEFAULT_PREEMPT_GRACE_S
from boson_shared.scheduling.probation import PROBATION_S
from boson_shared.scheduling.tenants import load_tenants


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
    warning = None
    if args.target_load is not None:
        if args.target_load <= 0:
            raise ConfigError(f"--target-load must be positive, not {args.target_load}")
        resized = resize_for_load(trace.workload, cluster, events, args.target_load)
        cluster, events, warning = resized.cluster, resized.events, resized.warning()
    elif args.nodes_scale is not None:
        if args.nodes_scale <= 0:
            raise ConfigError(f"--nodes-scale must be positive, not {args.nodes_scale}")
        cluster, events = scale_cluster(cluster, events, args.nodes_scale)
    if warning is not None:
        # On stderr, so that --json output stays one JSON document.
        Console(stderr=True).print(warning, highlight=False)
    if args.tenants is not None:
        return _run_tenants(args, trace, cluster, events)
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
            console = Console(width=260)
        for line in describe(trace, cluster):
            console.print(line, highlight=False)
        console.print(
            render_table("placement quality (seconds; fractions)", [m for m, _ in results])
        )
    if args.plot is not None:
        write_plots(args.plot, results)
    return 0


def _run_tenants(
    args: argparse.Namespace, trace: Trace, cluster: Cluster, events: NodeEvents
) -> int:
    """``--tenants FILE``: the three tenant policies on the file's tenants."""
    config = load_tenants(args.tenants)
    if args.format == "alibaba-v2017":
        tenancy = alibaba_v2017_tenants(trace.workload)
    else:
        tenancy = trace_tenants(trace.workload)
    unknown = sorted(set(tenancy.tenant) - set(config.tenants))
    if unknown:
        raise ConfigError(
            f"tenants file {args.tenants}: the trace has tenant(s) {', '.join(unknown)} "
            f"it does not declare (it declares {', '.join(config.tenants)})"
        )
    strategy = (args.strategy or ["binpack-fgd"])[0]
    reports = [
        run_policy(
            policy,
            trace.workload,
            cluster,
            events,
            tenancy,
            config,
            make_policy(strategy).placer,
            grace_s=args.preempt_grace_s,
            sample_step=args.sample_step,
        )[0]
        for policy in POLICIES
    ]
    if args.json:
        json.dump([r.as_dict() for r in reports], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        Console(width=220).print(render_tenants(reports))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to the ``boson`` parser."""
    parser = subparsers.add_parser(
        "simulate",
        help="replay a cluster trace through Boson's placement and baselines",
        description=(
            "Replay a trace (Alibaba v2017 batch_task + server_event, Alibaba GPU v2023 "
            "pods + node list, or the generic CSV format of boson/simulation/csv_trace.py) "
            "in simulated time through Boson's "
            "placer and balancer and the baselines, and compare them."
        ),
    )
    parser.add_argument("--tasks", type=Path, required=True, help="tasks file")
    parser.add_argument("--nodes", type=Path, required=True, help="nodes (or server_event) file")
    parser.add_argument("--events", type=Path, default=None, help="generic node events CSV")
    parser.add_argument("--format", choices=FORMATS, default="alibaba-v2017")
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
        help="resize so the bottleneck resource's offered load is L (shrinking keeps the "
        "mix of node shapes; warns when whole nodes miss L by more than 5%%)",
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
    parser.add_argument(
        "--tenants",
        type=Path,
        default=None,
        metavar="FILE",
        help="a tenants file (as BOSON_TENANTS_FILE): replay with admission across its "
        "tenants (Alibaba v2017: tenant by job_id %% 8, a b c d; CSV: the tenant and "
        "priority columns) under Boson's admission, FIFO and strict quotas, with the "
        "first --strategy (default binpack-fgd)",
    )
    parser.add_argument(
        "--preempt-grace-s",
        type=float,
        default=DEFAULT_PREEMPT_GRACE_S,
        metavar="S",
        help="with --tenants: how long a claim waits before preempting (default %(default)s)",
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


__all__ = ["register"]
