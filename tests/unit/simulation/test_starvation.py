"""A whole-node task behind a steady stream of small ones starts within its reservation's bound."""

from __future__ import annotations

import numpy as np
import pytest

from boson.simulation.engine import Simulation
from boson.simulation.policies import make_policy
from boson.simulation.trace_types import Cluster, NodeEvents, Workload
from tests.unit.simulation.conftest import cluster, workload

SMALL_EVERY_S = 1.5
SMALL_S = 10.0
BIG_AT = 50.0


def stream() -> tuple[list[tuple[float, float, float, float, int, int]], int]:
    """Small 1-unit tasks every SMALL_EVERY_S for 300 s, and one 4-unit task at BIG_AT."""
    rows = [(k * SMALL_EVERY_S, SMALL_S, 1.0, 1.0, 1, k) for k in range(200)]
    big = len(rows)
    rows.append((BIG_AT, SMALL_S, 4.0, 4.0, 1, big))
    rows.sort(key=lambda r: r[0])
    return rows, next(i for i, r in enumerate(rows) if r[2] == 4.0)


@pytest.mark.parametrize("name", ["binpack-fgd", "binpack-fgd+rebalance", "binpack"])
def test_a_whole_node_task_is_not_starved_by_a_stream_of_small_ones(name: str) -> None:
    rows, big = stream()
    policy = make_policy(name)
    sim = Simulation(
        workload(rows),
        cluster((4.0, 4.0), (4.0, 4.0)),
        NodeEvents.empty(),
        policy.placer,
        policy.drainer(),
        reserve=policy.reserve,
    )
    recorder = sim.run()
    # Every small task running when the big one arrives has ended SMALL_S
    # later: a node kept free of new work by then has room for it.
    bound = BIG_AT + SMALL_S
    assert np.isfinite(recorder.first_start[big]), "the whole-node task never started"
    assert recorder.first_start[big] <= bound
    promised = recorder.promised.get(big)
    assert promised is not None
    assert promised <= bound
    assert recorder.first_start[big] <= promised


def fragmented_node_workload() -> tuple[Workload, int]:
    """One 8-GPU node: six long 0.6-GPU shares (devices 0-5), two whole GPUs
    until t=100 (devices 6-7); a 2-GPU task at t=1; 0.5-GPU tasks of 150 s
    every 5 s after it."""
    rows: list[tuple[float, float, float]] = [(0.0, 10_000.0, 0.6)] * 6
    rows += [(0.0, 100.0, 1.0)] * 2
    rows.append((1.0, 10.0, 2.0))
    head = len(rows) - 1
    rows += [(2.0 + 5.0 * k, 150.0, 0.5) for k in range(60)]
    n = len(rows)
    return (
        Workload(
            submit=np.array([r[0] for r in rows]),
            duration=np.array([r[1] for r in rows]),
            demand=np.array([[1.0, 1.0, r[2]] for r in rows]),
            instances=np.ones(n, np.int64),
            job=np.arange(n, dtype=np.int64),
        ),
        head,
    )


@pytest.mark.parametrize("name", ["binpack-fgd", "binpack-fgd+rebalance"])
def test_a_whole_gpu_task_is_promised_the_devices_that_free_not_a_gpu_total(name: str) -> None:
    # 2.4 GPUs are free from the start, but on no whole device: the two
    # whole devices that free at t=100 are the task's, and it is promised
    # that time, not an earlier one the GPU total would suggest.
    work, head = fragmented_node_workload()
    policy = make_policy(name)
    sim = Simulation(
        work,
        Cluster(("g0",), np.array([[100.0, 100.0, 8.0]])),
        NodeEvents.empty(),
        policy.placer,
        policy.drainer(),
        reserve=policy.reserve,
    )
    recorder = sim.run()
    promised = recorder.promised.get(head)
    assert promised == 100.0
    assert recorder.first_start[head] <= promised
