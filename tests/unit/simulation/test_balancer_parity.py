"""The simulator's balancer offers freed capacity as the balancer service does.

One node, full, with single-instance tasks waiting; then a hole of ``free``
opens. The simulator's :class:`~boson.simulation.drainers.Balancer` and the
service's :class:`~boson_services.balancer.dispatcher.Dispatcher` (each at a
completion, knowing how long the running work takes) must start the same
waiting tasks: the same order (dead node's work, then work past the age
limit, then smallest pending job first), the same head reservation and
backfill around it, the same clean-fit pass against the same typical demand
learnt from the same tasks, then whatever fits.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from boson.simulation.drainers import Balancer
from boson.simulation.engine import simulate
from boson.simulation.policies import make_policy
from tests.support.balancer import N, demand, dispatcher, snapshot
from tests.support.fakes import Clock

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
        reserve=policy.reserve,
    )
    return {k for k in range(len(waiting)) if rec.first_start[k + 2] == OPENS_AT}


async def service_starts(
    free: float, age_limit: float, waiting: list[tuple[float, float, int]]
) -> set[int]:
    clock = Clock()
    d = dispatcher(clock)
    d.age_limit_s = age_limit
    d.on_snapshot(snapshot([N("n0", slots=8, capacity=CAPACITY)]))
    # The same tasks: the two that fill the node, each expected to run as
    # long as its timeout (no run times reported yet), as the simulator knows.
    for k, (size, runs) in enumerate(((CAPACITY - free, 10.0), (free, OPENS_AT))):
        assert d.hold(f"filler{k}", demand(size), None, handler=f"f{k}", timeout_s=runs).done()
    futures: list[asyncio.Future[str]] = []
    for t, size, job in waiting:
        clock.now = t
        futures.append(
            d.hold(f"w{len(futures)}", demand(size), None, job=job, handler="w", timeout_s=1.0)
        )
    clock.now = OPENS_AT
    d.complete("filler1", OPENS_AT)
    return {k for k, f in enumerate(futures) if f.done()}


@pytest.mark.parametrize("seed", range(24))
async def test_the_simulator_and_the_service_start_the_same_waiting_tasks(seed: int) -> None:
    free, age_limit, waiting = scenario(seed)
    assert simulator_starts(free, age_limit, waiting) == await service_starts(
        free, age_limit, waiting
    )
