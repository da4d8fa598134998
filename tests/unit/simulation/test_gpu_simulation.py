"""The simulator with GPU devices: shares of one device, whole devices, books exact at the end."""

from __future__ import annotations

import numpy as np
import pytest

from boson.simulation.engine import Simulation
from boson.simulation.policies import make_policy, policy_names
from boson.simulation.trace_types import Cluster, NodeEvents, Workload


def gpu_workload() -> Workload:
    # Thirteen 0.6-GPU tasks at t=0 for 10 s on one 8-GPU node: eight run at
    # once (one per device), five wait; a whole-node 8-GPU task at t=1 waits
    # until every share has ended.
    submit = np.array([0.0] * 13 + [1.0])
    demand = np.array([[1.0, 1.0, 0.6]] * 13 + [[1.0, 1.0, 8.0]])
    return Workload(
        submit=submit,
        duration=np.full(14, 10.0),
        demand=demand,
        instances=np.ones(14, np.int64),
        job=np.arange(14, dtype=np.int64),
    )


@pytest.mark.parametrize("name", policy_names())
def test_shares_take_one_device_each_and_the_books_end_exact(name: str) -> None:
    policy = make_policy(name)
    cluster = Cluster(("g0",), np.array([[32.0, 64.0, 8.0]]))
    sim = Simulation(gpu_workload(), cluster, NodeEvents.empty(), policy.placer, policy.drainer())
    held_max = 0
    original = sim.start

    def start(
        task: int, nodes: np.ndarray, replaced: bool, masks: np.ndarray | None = None
    ) -> None:
        nonlocal held_max
        original(task, nodes, replaced, masks)
        held = sim.table.device_allocated
        assert np.all(held <= sim.table.device_capacity)
        held_max = max(held_max, int((held > 0).sum()))

    sim.start = start  # type: ignore[method-assign]
    sim.run()
    assert sim.recorder.never == 0
    assert held_max == 8
    assert sim.table.device_allocated.sum() == 0
    assert sim.table.allocated[0, 2] == 0.0
    # The five waiting shares started at 10, the whole-node task after them at 20.
    assert max(sim.recorder.last_end) == pytest.approx(30.0)
