"""A whole-node task behind a steady stream of small ones starts within its reservation's bound."""

from __future__ import annotations

import numpy as np
import pytest

from boson.simulation.engine import Simulation
from boson.simulation.policies import make_policy
from boson.simulation.traces import NodeEvents
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
