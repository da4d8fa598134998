"""Placements per second on GPU devices: the per-device path on the Alibaba GPU trace's nodes.

Run: ``.venv/bin/python benchmarks/gpu_devices.py [--pods N] [--batch B]
[--strategy S ...] [--traces DIR]``.

Nodes: every node of ``alibaba_gpu_v2023_nodes.csv`` (CPU in cores, memory
in GiB, its GPUs as devices of its model). Demands: the first ``--pods``
pods of ``alibaba_gpu_v2023_pods_before_day135.csv`` in file order, a pod
asking ``gpu_milli`` below 1000 of one GPU taking that share of one device,
else ``num_gpu`` whole devices (the trace's README). Nothing is released,
so the cluster fills as it goes. Rates are in CPU seconds of the process.

``binpack-fgd`` runs twice, side by side: through its per-device index
(:class:`~boson_shared.scheduling.fgd_device_index.DeviceFgdIndex`, what the
placer uses) and through the vectorised full rescore it replaces
(``binpack-fgd (full rescore)``); the two must choose the same node and
devices for every pod (checked).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from boson_shared.scheduling import scores  # noqa: E402
from boson_shared.scheduling.placement import Placer  # noqa: E402
from boson_shared.scheduling.scores import STRATEGIES  # noqa: E402
from boson_shared.scheduling.table import FloatArray, GpuDevice, NodeTable  # noqa: E402

FULL = "binpack-fgd (full rescore)"


class FullRescorePlacer(Placer):
    """``binpack-fgd`` with every per-device placement scored by the full rescore."""

    def _device_scores(
        self, vec: FloatArray, models: frozenset[str] | None
    ) -> tuple[FloatArray, int | None]:
        s = scores.scores(self.table, self.strategy, vec, self._typical, models)
        return s, scores.best(self.table, self.strategy, s)


TRACES = REPO.parent / "shared" / "traces"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--strategy", action="append", choices=STRATEGIES)
    parser.add_argument("--traces", type=Path, default=TRACES)
    args = parser.parse_args()
    with (args.traces / "alibaba_gpu_v2023_nodes.csv").open() as f:
        nodes = list(csv.DictReader(f))
    with (args.traces / "alibaba_gpu_v2023_pods_before_day135.csv").open() as f:
        pods = list(csv.DictReader(f))[: args.pods]
    demands = []
    for pod in pods:
        count, milli = int(pod["num_gpu"]), int(pod["gpu_milli"])
        gpu = milli / 1000 if count == 1 and milli < 1000 else float(count)
        demands.append((int(pod["cpu_milli"]) / 1000, int(pod["memory_mib"]) / 1024, gpu))
    matrix = np.array(demands, dtype=np.float64)
    print(f"{len(nodes):,} nodes, {len(pods):,} pods, batches of {args.batch}")
    strategies = list(args.strategy or ["binpack-fgd", "binpack", "spread"])
    if "binpack-fgd" in strategies:
        strategies.insert(strategies.index("binpack-fgd") + 1, FULL)
    chosen: dict[str, tuple[list[int], list[int]]] = {}
    for strategy in strategies:
        table = NodeTable(len(nodes))
        for row in nodes:
            gpus = int(row["gpu"])
            capacity = (int(row["cpu_milli"]) / 1000, int(row["memory_mib"]) / 1024, float(gpus))
            table.upsert(row["sn"], capacity, devices=[GpuDevice(row["model"])] * gpus)
        if strategy == FULL:
            placer: Placer = FullRescorePlacer(table, "binpack-fgd")
        else:
            placer = Placer(table, strategy)
        rows: list[int] = []
        masks: list[int] = []
        started = time.process_time()
        for start in range(0, matrix.shape[0], args.batch):
            batch = placer.place_batch(matrix[start : start + args.batch])
            rows += batch.indices.tolist()
            masks += [] if batch.masks is None else batch.masks.tolist()
        spent = time.process_time() - started
        placed = sum(1 for i in rows if i >= 0)
        rate = matrix.shape[0] / spent if spent > 0 else float("inf")
        print(f"{strategy:>26}: {placed:,} placed, {rate:,.0f} placements/s")
        chosen[strategy] = (rows, masks)
    if FULL in chosen:
        same = chosen[FULL] == chosen["binpack-fgd"]
        print(f"binpack-fgd: index and full rescore chose the same nodes and devices: {same}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
