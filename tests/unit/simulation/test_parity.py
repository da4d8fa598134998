"""The simulator places exactly as the running scheduler does, from the same state.

The same cluster snapshot goes to the scheduler service's handlers and into a
simulator node table; the same arrivals (a task's instances as one
``TaskSubmitted`` batch, as the scheduler receives them) go to
``SchedulerHandlers.place`` and to the simulator's pure step
``place_instances``. Every strategy must choose the same nodes, batch after
batch, with allocations carried forward on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import trace_quality
from boson.simulation.instances import place_instances
from boson.simulation.policies import make_policy
from boson_services.scheduler.handlers import SchedulerHandlers
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.contract.messages import (
    ClusterSnapshot,
    NodeState,
    ResourceRequest,
    ResourceVector,
    TaskPlaced,
    TaskSubmitted,
)
from boson_shared.contract.topology import Names
from boson_shared.scheduling.demand import LinearDemandModel
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.scores import STRATEGIES, Strategy
from boson_shared.scheduling.table import NodeTable

NOW = 1_700_000_000.0
RNG = np.random.default_rng(12)
CAPACITY = RNG.choice([8.0, 16.0], size=(12, 1)) * np.array([[1.0, 0.5]])
ALLOCATED = np.round(CAPACITY * RNG.uniform(0, 0.8, size=(12, 2)), 1)
DEAD = {"n3"}
# (cpu, memory, instances) per task, arriving in this order.
ARRIVALS = [(1.0, 0.5, 3), (2.0, 1.5, 5), (0.5, 0.25, 9), (3.0, 1.0, 4), (1.0, 2.0, 6)]


def snapshot() -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="m",
        seq=1,
        nodes=tuple(
            NodeState(
                node_id=f"n{i}",
                alive=f"n{i}" not in DEAD,
                capacity=ResourceVector(cpu=float(c[0]), memory=float(c[1])),
                allocated=ResourceVector(cpu=float(a[0]), memory=float(a[1])),
                slots=4,
                running=0,
                free_slots=4,
                measured_cpu=0.0,
                measured_memory=0.0,
                last_heartbeat_at=NOW,
            )
            for i, (c, a) in enumerate(zip(CAPACITY, ALLOCATED, strict=True))
        ),
    )


def scheduler(strategy: Strategy) -> SchedulerHandlers:
    handlers = SchedulerHandlers(
        names=Names("parity"),
        strategy=strategy,
        demand_model=LinearDemandModel(),
        reservation_ttl_s=1e9,
        ingress_max_age_s=60.0,
        clock=lambda: 0.0,
        wall_clock=lambda: NOW,
    )
    handlers.on_snapshot(snapshot())
    return handlers


def simulator_table() -> NodeTable:
    # What the simulator builds from a cluster (upsert per node), with the
    # snapshot's allocations and liveness.
    table = NodeTable(len(CAPACITY))
    for i, (c, a) in enumerate(zip(CAPACITY, ALLOCATED, strict=True)):
        table.upsert(f"n{i}", (*c, 0.0), allocated=(*a, 0.0), alive=f"n{i}" not in DEAD)
    return table


def submitted(task: int, cpu: float, memory: float, count: int) -> list[TaskSubmitted]:
    return [
        TaskSubmitted(
            task_id=f"t{task}.{k}",
            handler="noop",
            reply_to="client-1",
            complexity=1.0,
            data_size=0.0,
            requests=ResourceRequest(cpu=cpu, memory=memory, gpu=0.0),
            submitted_at=NOW,
        )
        for k in range(count)
    ]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("typical", [None, (1.0, 0.5, 0.0)])
def test_scheduler_and_simulator_choose_the_same_nodes(
    strategy: Strategy, typical: tuple[float, float, float] | None
) -> None:
    service = scheduler(strategy)
    table = simulator_table()
    placer = make_policy(strategy).placer(table)
    assert isinstance(placer, Placer)
    if typical is not None:  # a warmed-up estimate, the same on both sides
        median = np.asarray(typical)
        for side in (service.placer, placer):
            side.typical.value = median  # remnant's
            side.typical.points = np.array([0.5 * median, median, 2.0 * median])  # binpack-fgd's
    for task, (cpu, memory, count) in enumerate(ARRIVALS):
        emits = service.place(submitted(task, cpu, memory, count))
        ours = [e.message.node_id for e in emits if isinstance(e.message, TaskPlaced)]
        nodes = place_instances(placer, table, np.array([cpu, memory, 0.0]), count)
        theirs = [f"n{i}" for i in nodes.tolist()]
        # The scheduler emits waiting instances as placed with no node.
        assert [n for n in ours if n is not None] == theirs, (strategy, task)
        assert ours.count(None) == count - len(theirs)
    np.testing.assert_array_equal(service.table.allocated, table.allocated)


def test_the_default_strategy_is_the_one_the_benchmark_judges() -> None:
    default = SchedulerSettings.model_fields["strategy"].default
    assert default == "binpack-fgd"
    assert f"{default}+rebalance" == trace_quality.DEFAULT
