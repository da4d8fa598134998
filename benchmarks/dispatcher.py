"""The balancer's dispatcher under load: results and holds per second by cluster size.

Run ``python -m benchmarks.dispatcher`` from the repo root (no broker).

Every node gets eight times its credit of held work, so none has credit to
spare; then, ``--ops`` times, a result comes back for some dispatched task
(its node regains one credit, a pump dispatches) and a new task is held for
one of the nodes (another pump). That is the balancer's work per task at
full load, without the broker and the codec; the figure should not fall as
the cluster grows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

import numpy as np

from boson_services.balancer.dispatcher import Dispatcher
from boson_shared.contract.messages import ClusterSnapshot, NodeState, ResourceVector

BACKLOG_PER_NODE = 8


def snapshot(nodes: int) -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="bench",
        seq=1,
        nodes=tuple(
            NodeState(
                node_id=f"n{i}",
                alive=True,
                capacity=ResourceVector(cpu=1e6, memory=1e6),
                allocated=ResourceVector(cpu=float(i), memory=float(i)),
                slots=2,
                running=0,
                free_slots=2,
                measured_cpu=0.2,
                measured_memory=0.2,
                last_heartbeat_at=0.0,
            )
            for i in range(nodes)
        ),
    )


async def rate(nodes: int, ops: int) -> float:
    """Result + hold pairs per second with ``nodes`` saturated nodes."""
    dispatcher = Dispatcher(
        credit_per_slot=2,
        hot_threshold=0.9,
        retarget_after_s=60.0,
        imbalance_threshold=10.0,
        rng=np.random.default_rng(0),
    )
    dispatcher.on_snapshot(snapshot(nodes))
    demand = ResourceVector(cpu=1.0, memory=1.0)
    held = 0
    for _ in range(nodes * BACKLOG_PER_NODE):
        dispatcher.hold(f"t{held}", demand, f"n{held % nodes}")
        held += 1
    start = time.perf_counter()
    for _ in range(ops):
        dispatcher.complete(next(iter(dispatcher.where)))
        dispatcher.hold(f"t{held}", demand, f"n{held % nodes}")
        held += 1
    return ops / (time.perf_counter() - start)


async def main_async(args: argparse.Namespace) -> int:
    print(f"{'nodes':>6}  {'results+holds/s':>16}")
    for nodes in args.nodes:
        print(f"{nodes:>6}  {await rate(nodes, args.ops):>16,.0f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 100, 1000])
    parser.add_argument("--ops", type=int, default=20_000)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
