"""Placements per second of a strategy: Boson's placer against a plain loop.

Run: ``.venv/bin/python benchmarks/placement.py [--placements M] [--sizes 100,1000,...]
[--strategy S] [--batch B] [--distinct] [--traces DIR]`` (default strategy:
the scheduler's default, ``binpack-fgd``).

Workload, from the Alibaba v2017 trace in ``../shared/traces/`` (see its
README; ``--traces`` points elsewhere, e.g. from a git worktree):

* demands are ``(plan_cpu, plan_mem, 0)`` of batch-task instances, drawn at
  random with probability proportional to ``number_of_instances`` (each
  instance is one schedulable unit); rows with empty requests are dropped;
  ``--distinct`` multiplies each by a random factor in [1, 1.001), so that
  no two are equal;
* node capacities are ``(cpus × 100, mem_norm, 0)`` of the trace's machines
  (100 = one core, the unit of ``plan_cpu``), drawn from their ``add`` events;
* each node starts with a random allocation, uniform in 0–95 % of its
  capacity per dimension independently — a cluster in mid-flight, so that
  the run of nearly full nodes a binpack cluster accumulates is there from
  the first placement.

Three implementations place the same demands from the same starting state
and must choose the same nodes (checked): ``Placer.place_batch`` on
consecutive batches of ``--batch`` demands (batched, as the scheduler gets
them from the broker), ``Placer.place`` called once per demand (one at a
time), and a plain loop. For ``binpack`` the plain loop is
:func:`plain_binpack` below, a straightforward loop over every node per
demand; for the others it is the full rescore :func:`scores.choose` (every
node scored with numpy, per demand). The plain loop is timed on a prefix of
the demands (it is slow), and its rate compared with the batched rate.

A strategy that learns a typical demand (``remnant``, ``binpack-fgd``)
starts from the estimate a running scheduler has — it has learnt
:data:`WARM` demands of the stream — and goes on learning and refreshing on
its live cadence: refreshed before each ``place_batch`` (or ``place``) call.
The plain loop refreshes at the same points, so that both see the same
estimates. Rates are in CPU seconds of the process (:data:`CLOCK`).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boson_shared.scheduling import scores  # noqa: E402
from boson_shared.scheduling.amounts import grid_columns  # noqa: E402
from boson_shared.scheduling.placement import Placer  # noqa: E402
from boson_shared.scheduling.scores import DEFAULT_STRATEGY, STRATEGIES, Strategy  # noqa: E402
from boson_shared.scheduling.table import NodeTable  # noqa: E402
from boson_shared.scheduling.typical_demand import LongRunDemand, TypicalDemand  # noqa: E402

TRACES = ROOT.parent / "shared" / "traces"
TASKS = TRACES / "alibaba_v2017_batch_task_0-7200s.csv"
SERVERS = TRACES / "alibaba_v2017_server_event.csv"
CLOCK = time.process_time
"""CPU seconds of this process: on a shared machine, wall time measures the neighbours too."""
WARM = 4096
"""Demands the estimate has learnt before the timed runs start (see :func:`warm_estimate`)."""


def load_demands() -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``(cpu, memory, 0)`` requests of the trace and their instance counts."""
    rows: list[tuple[float, float]] = []
    weights: list[float] = []
    with TASKS.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            if not rec["plan_cpu"] or not rec["plan_mem"]:
                continue
            rows.append((float(rec["plan_cpu"]), float(rec["plan_mem"])))
            weights.append(float(rec["number_of_instances"]))
    dem = np.zeros((len(rows), 3))
    dem[:, :2] = rows
    w = np.asarray(weights)
    return dem, w / w.sum()


def load_capacities() -> np.ndarray:
    """``(cpu, memory, 0)`` capacity of every machine the trace adds."""
    caps: list[tuple[float, float]] = []
    with SERVERS.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            if rec["event_type"] == "add":
                caps.append((float(rec["cpus"]) * 100.0, float(rec["mem_norm"])))
    out = np.zeros((len(caps), 3))
    out[:, :2] = caps
    return out


def make_cluster(n: int, caps: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    cap = caps[rng.integers(0, caps.shape[0], size=n)]
    alloc = cap * rng.uniform(0.0, 0.95, size=cap.shape)
    return cap, alloc


def build_table(cap: np.ndarray, alloc: np.ndarray) -> NodeTable:
    table = NodeTable(initial_capacity=cap.shape[0])
    for i in range(cap.shape[0]):
        table.upsert(f"node-{i}", cap[i], allocated=alloc[i])
    return table


def plain_binpack(
    capacity: list[list[float]], allocated: list[list[float]], demands: list[list[float]]
) -> list[int]:
    """Binpack the obvious way: for each demand, score every node, keep the best.

    Score: mean over the node's dimensions with capacity of (allocated +
    demand) / capacity; ties go to the more allocated node, then the lowest
    index (Boson's tie-break). Allocates as it goes. -1: no node fits now.
    """
    weights = []
    for cap in capacity:
        k = sum(1 for c in cap if c > 0)
        weights.append([1.0 / (c * k) if c > 0 else 0.0 for c in cap])
    chosen = []
    for r in demands:
        best, best_u, best_i = -1.0, -1.0, -1
        for i, cap in enumerate(capacity):
            a = allocated[i]
            if cap[0] - a[0] < r[0] or cap[1] - a[1] < r[1] or cap[2] - a[2] < r[2]:
                continue
            w = weights[i]
            u = a[0] * w[0] + a[1] * w[1] + a[2] * w[2]
            s = u + (w[0] * r[0] + w[1] * r[1] + w[2] * r[2])
            if s > best or (s == best and u > best_u):
                best, best_u, best_i = s, u, i
        if best_i >= 0:
            a = allocated[best_i]
            a[0] += r[0]
            a[1] += r[1]
            a[2] += r[2]
        chosen.append(best_i)
    return chosen


def full_rescore(
    cap: np.ndarray,
    alloc: np.ndarray,
    demands: np.ndarray,
    strategy: Strategy,
    typical: TypicalDemand,
    batch: int,
) -> list[int]:
    """The reference: every node scored with numpy for each demand (``scores.choose``).

    ``typical`` is refreshed before every ``batch`` demands and learns each
    placed one, as a placer's estimate does when it is given those batches.
    """
    table = build_table(cap, alloc)
    learns = strategy in ("remnant", "binpack-fgd")
    chosen = []
    for k, d in enumerate(demands):
        if k % batch == 0:
            typical.refresh()
        estimate = typical.points if strategy == "binpack-fgd" else typical.value
        i = scores.choose(table, strategy, d, estimate)
        if i is not None:
            table.allocate(i, d)
            if learns:
                typical.observe(d)
        chosen.append(-1 if i is None else i)
    return chosen


def warm_estimate(strategy: Strategy, sample: np.ndarray) -> TypicalDemand:
    """The estimate of a placer that has placed ``sample``: a scheduler already running.

    It goes on learning from what is placed next and refreshes on its own
    cadence, as it does live.
    """
    typical = LongRunDemand() if strategy == "binpack-fgd" else TypicalDemand()
    for d in sample:
        typical.observe(d)
    return typical


def place_in_batches(placer: Placer, demands: np.ndarray, batch: int) -> np.ndarray:
    """``place_batch`` on consecutive slices of ``batch`` demands: the rows chosen."""
    parts = [
        placer.place_batch(demands[k : k + batch]).indices for k in range(0, len(demands), batch)
    ]
    return np.concatenate(parts)


def warm_up(strategy: Strategy) -> None:
    """Load (or compile) whatever the strategy runs, outside the timed runs."""
    table = build_table(np.ones((2, 3)), np.zeros((2, 3)))
    placer = Placer(table, strategy)
    placer.typical = warm_estimate(strategy, np.full((4, 3), 0.25))
    place_in_batches(placer, np.full((4, 3), 0.25), 2)


def run(
    n: int,
    m: int,
    plain_budget_s: float,
    seed: int,
    strategy: Strategy,
    batch: int,
    distinct: bool,
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    dem, p = load_demands()
    drawn = dem[rng.choice(dem.shape[0], size=m + WARM, p=p)]
    if distinct:  # a relative jitter below a thousandth: no two demands equal
        drawn = drawn * rng.uniform(1.0, 1.001, size=drawn.shape)
    # CPU and memory on the books' grid, as the placer puts every demand it
    # is given (amounts.py): the plain reference then scores and learns the
    # amounts the placer scores and learns, not ones half a step away.
    drawn = grid_columns(drawn)
    sample, demands = drawn[:WARM], drawn[WARM:]
    cap, alloc = make_cluster(n, load_capacities(), rng)

    table = build_table(cap, alloc)
    placer = Placer(table, strategy)
    placer.typical = warm_estimate(strategy, sample)
    t0 = CLOCK()
    batch_idx = place_in_batches(placer, demands, batch)
    batched_s = CLOCK() - t0
    batch_idx = np.where(batch_idx >= 0, batch_idx, -1)

    table1 = build_table(cap, alloc)
    placer1 = Placer(table1, strategy)
    placer1.typical = warm_estimate(strategy, sample)
    t0 = CLOCK()
    single = [placer1.place(d).index for d in demands]
    single_s = CLOCK() - t0
    single_idx = [-1 if i is None else i for i in single]

    # The plain loop costs O(n) per demand: time a prefix sized to the budget.
    k = max(20, min(m, int(plain_budget_s / (n * 4e-7))))
    t0 = CLOCK()
    if strategy == "binpack":
        plain = plain_binpack(cap.tolist(), alloc.tolist(), demands[:k].tolist())
    else:
        typical = warm_estimate(strategy, sample)
        plain = full_rescore(cap, alloc, demands[:k], strategy, typical, batch)
    plain_s = CLOCK() - t0
    assert plain == batch_idx[:k].tolist(), "plain loop and batched placer choose differently"
    if strategy in ("binpack", "spread"):  # no estimate: batch and one by one agree throughout
        assert single_idx == batch_idx.tolist(), "batch and one-at-a-time differ"
    else:  # one at a time refreshes the estimate before every demand
        typical = warm_estimate(strategy, sample)
        again = full_rescore(cap, alloc, demands[:k], strategy, typical, 1)
        assert again == single_idx[:k], "plain loop and one-at-a-time placer choose differently"

    return {
        "nodes": n,
        "placements": m,
        "placed": int((batch_idx >= 0).sum()),
        "batched": m / batched_s,
        "single": m / single_s,
        "plain": k / plain_s,
        "plain_n": k,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=20_000)
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--plain-budget", type=float, default=3.0, help="seconds per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY)
    parser.add_argument(
        "--batch", type=int, default=256, help="demands per place_batch call (the prefetch)"
    )
    parser.add_argument(
        "--distinct", action="store_true", help="jitter the demands so that no two are equal"
    )
    parser.add_argument("--traces", type=Path, default=TRACES, help="folder of the trace files")
    args = parser.parse_args()
    global TASKS, SERVERS
    TASKS = args.traces / TASKS.name
    SERVERS = args.traces / SERVERS.name
    print(
        f"{args.strategy}, up to {args.placements:,} demands from {TASKS.name}, "
        f"nodes from {SERVERS.name}"
    )
    print(
        f"{'nodes':>8} {'demands':>8} {'placed':>8} {'batched/s':>11} {'one-by-one/s':>13} "
        f"{'plain/s':>10} {'(plain n)':>9} {'batched÷plain':>14}"
    )
    warm_up(args.strategy)
    for n in (int(s) for s in args.sizes.split(",")):
        # Twenty demands per node at most: a 100-node cluster is full long before 20,000.
        m = min(args.placements, 20 * n)
        r = run(n, m, args.plain_budget, args.seed, args.strategy, args.batch, args.distinct)
        print(
            f"{r['nodes']:>8,} {r['placements']:>8,} {r['placed']:>8,} "
            f"{r['batched']:>11,.0f} {r['single']:>13,.0f} "
            f"{r['plain']:>10,.0f} {r['plain_n']:>9,} {r['batched'] / r['plain']:>13,.0f}×"
        )
    print("choices identical across batched, one-at-a-time and the plain loop: checked")


if __name__ == "__main__":
    main()
