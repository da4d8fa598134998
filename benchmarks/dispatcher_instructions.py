"""What admission through the gate adds to a task, counted in instructions.

Run ``python -m benchmarks.dispatcher_instructions`` from the repo root
(valgrind on the path; no broker). It runs
:func:`benchmarks.dispatcher.rate_with_handlers` — each task with its
handler, through the balancer's admission gate or without tenants — under
``valgrind --tool=callgrind`` twice per side, with ``--short`` and
``--long`` tasks after the same backlog, and takes the difference over the
extra tasks: the instructions a task costs, start-up and backlog left out.
The two sides' difference is what the gate adds to a task.

Counted instructions do not depend on what else the machine runs (the same
figure within a few per cent, run after run, on a busy machine), so this
tells a change's effect where a timed run's noise hides it; the timed
benchmark (:mod:`benchmarks.dispatcher`) gives the microseconds. Both
sides' runs go in parallel, two at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from benchmarks.dispatcher import rate_with_handlers
from boson_shared.runtime.compiled import describe
from boson_shared.runtime.heap import freeze_start_up_heap

_COLLECTED = re.compile(r"Collected : (\d+)")


def run_once(nodes: int, tasks: int, tenants: int | None) -> None:
    """One timed loop, as the benchmark's (what valgrind counts)."""
    asyncio.run(rate_with_handlers(nodes, tasks, tenants))


def counted(nodes: int, tasks: int, tenants: int | None) -> int:
    """Instructions of one process running :func:`run_once` under callgrind."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.dispatcher_instructions",
        "--one",
        str(nodes),
        str(tasks),
        "none" if tenants is None else str(tenants),
    ]
    # A fixed hash seed: the same dict layouts, run after run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError("valgrind printed no instruction count")
    return int(found.group(1))


def per_task(nodes: int, short: int, long: int, tenants: int | None) -> float:
    with ThreadPoolExecutor(max_workers=2) as pool:
        low, high = pool.map(lambda n: counted(nodes, n, tenants), (short, long))
    return (high - low) / (long - short)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--short", type=int, default=1000)
    parser.add_argument("--long", type=int, default=3000)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        nodes, tasks, tenants = args.one
        freeze_start_up_heap()  # as the benchmark's process does before it measures
        run_once(int(nodes), int(tasks), None if tenants == "none" else int(tenants))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on the path", file=sys.stderr)
        return 2
    if args.long <= args.short:
        print("--long must be more tasks than --short", file=sys.stderr)
        return 2
    without = per_task(args.nodes, args.short, args.long, None)
    gated = per_task(args.nodes, args.short, args.long, args.tenants)
    print(describe())
    print(
        f"{args.nodes} nodes, {args.tenants} tenants: without tenants {without:,.0f}"
        f" instructions a task, through the gate {gated:,.0f}; the gate adds"
        f" {gated - without:,.0f} ({(gated - without) / without:.0%} of a task without tenants)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
