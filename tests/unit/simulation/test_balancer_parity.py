"""The simulator's balancer offers freed capacity as the balancer service does.

One node, full, with single-instance tasks waiting; then a hole of ``free``
opens. The simulator's :class:`~shared.scheduling.sim_policies.Balancer` (at
a completion) and the service's :class:`~services.balancer.dispatcher.Dispatcher`
(at a snapshot) must start the same waiting tasks: the same order (dead
node's work, then work past the age limit, then smallest pending job first),
the same clean-fit pass against the same typical demand learnt from the same
tasks, then whatever fits.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.balancer.dispatcher import Dispatcher
from shared.contract.messages import ClusterSnapshot, NodeState, ResourceVector
from shared.scheduling.sim_policies import Balancer, make_policy
from shared.scheduling.simulation import simulate

from .conftest import cluster, events, workload

CAPACITY = 10.0
OPENS_AT = 5.0


def scenario(seed: int) -> tuple[float, float, list[tuple[float, float, int]]]:
    """(free, age limit, waiting tasks as (arrival, size, job))."""
    rng = np.random.default_rng(seed)
    free = float(rng.integers(3, 9))
    age_limit = float(rng.choice([2.5, 450.0]))
    waiting = [
        (1.0 + 0.5 * i, float(rng.integers(1, 7)), int(rng.integers(1, 4))) for i in range(6)
    ]
    return free, age_limit, waiting


def simulator_starts(
    free: float, age_limit: float, waiting: list[tuple[float, float, int]]
) -> set[int]:
    # Task 0 holds CAPACITY - free until t=10, task 1 holds free until t=5:
    # the node is full until the hole opens.
    rows = [(0.0, 10.0, CAPACITY - free, CAPACITY - free, 1, 0), (0.0, OPENS_AT, free, free, 1, 0)]
    rows += [(t, 1.0, size, size, 1, job) for t, size, job in waiting]
    policy = make_policy("binpack+rebalance")
    _, rec = simulate(
        "parity",
        workload(rows),
        cluster((CAPACITY, CAPACITY)),
        events(),
        policy.placer,
        Balancer(age_limit=age_limit),
        1.0,
    )
    return {k for k in range(len(waiting)) if rec.first_start[k + 2] == OPENS_AT}


async def service_starts(
    free: float, age_limit: float, waiting: list[tuple[float, float, int]]
) -> set[int]:
    now = [0.0]
    d = Dispatcher(
        credit_per_slot=2,
        hot_threshold=0.9,
        retarget_after_s=60.0,
        imbalance_threshold=10.0,
        age_limit_s=age_limit,
        clock=lambda: now[0],
    )
    # The same tasks seen: the two that fill the node (done before the hole).
    for k, size in enumerate((CAPACITY - free, free)):
        d.hold(f"filler{k}", ResourceVector(cpu=size, memory=size), None)
        d.release(f"filler{k}")
    futures: list[asyncio.Future[str]] = []
    for t, size, job in waiting:
        now[0] = t
        futures.append(
            d.hold(f"w{len(futures)}", ResourceVector(cpu=size, memory=size), None, job=job)
        )
    now[0] = OPENS_AT
    node = NodeState(
        node_id="n0",
        alive=True,
        capacity=ResourceVector(cpu=CAPACITY, memory=CAPACITY),
        allocated=ResourceVector(cpu=CAPACITY - free, memory=CAPACITY - free),
        slots=8,
        running=0,
        free_slots=8,
        measured_cpu=0.0,
        measured_memory=0.0,
        last_heartbeat_at=0.0,
    )
    d.on_snapshot(ClusterSnapshot(monitor_id="m", seq=1, nodes=(node,)))
    await asyncio.sleep(0)
    return {k for k, f in enumerate(futures) if f.done()}


@pytest.mark.parametrize("seed", range(24))
async def test_the_simulator_and_the_service_start_the_same_waiting_tasks(seed: int) -> None:
    free, age_limit, waiting = scenario(seed)
    assert simulator_starts(free, age_limit, waiting) == await service_starts(
        free, age_limit, waiting
    )
