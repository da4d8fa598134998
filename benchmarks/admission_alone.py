"""Admission's calls alone, without the dispatcher: CPU µs a task.

Run ``python -m benchmarks.admission_alone`` from the repo root (no broker).

The loop of ``benchmarks/dispatcher.py --tenants`` without the dispatcher:
a pool of eight tasks a node, as many again waiting in the tenants' lines
(quotas equal, weights 1 to 4, unlimited borrowing, preemption allowed);
then, per task, a release, a submission, an admission pass and reclaim.
Each figure is the best of ``--repeats`` runs taken in turn. It only uses
:class:`~boson_shared.scheduling.admission.Admission`'s public API, so it
runs against an older build too (``PYTHONPATH`` pointing at its checkout).
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Hashable, Sequence

from boson_shared.scheduling.admission import Admission, Running
from boson_shared.scheduling.tenants import TenantsConfig, TenantSpec

ADMITTED_PER_NODE = 8


def admission_for(nodes: int, tenants: int) -> Admission:
    pool = float(nodes * ADMITTED_PER_NODE)
    share = pool / tenants
    config = TenantsConfig(
        tenants={
            f"t{k}": TenantSpec(
                quota={"cpu": share, "memory": share}, weight=1 + k % 4, may_preempt=True
            )
            for k in range(tenants)
        }
    )
    admission = Admission(config)
    admission.set_pool((pool, pool, 0.0))
    return admission


def per_task(nodes: int, tenants: int, ops: int) -> float:
    """CPU µs a task in admission's calls, the pool saturated."""
    admission = admission_for(nodes, tenants)
    names = admission.names
    runs: dict[Hashable, Running] = {}
    order: deque[Hashable] = deque()

    def place(offer: Running) -> int:
        runs[offer.key] = offer
        order.append(offer.key)
        return 1

    vector = (1.0, 1.0, 0.0)
    submitted = 0
    now = 0.0
    for _ in range(nodes * ADMITTED_PER_NODE * 2):
        admission.submit(f"t{submitted}", names[submitted % tenants], vector, now)
        submitted += 1
    admission.admit(now, place)
    start = time.process_time()
    for _ in range(ops):
        now += 0.001
        admission.release(runs.pop(order.popleft()))
        admission.submit(f"t{submitted}", names[submitted % tenants], vector, now)
        submitted += 1
        admission.admit(now, place)
        admission.reclaim(now)
    return (time.process_time() - start) / ops * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--tenants", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    best = dict.fromkeys(args.tenants, float("inf"))
    for _ in range(args.repeats):
        for tenants in args.tenants:
            best[tenants] = min(best[tenants], per_task(args.nodes, tenants, args.ops))
    print(f"{'nodes':>6}  {'tenants':>7}  {'admission µs/task':>18}")
    for tenants, value in best.items():
        print(f"{args.nodes:>6}  {tenants:>7}  {value:>18.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
