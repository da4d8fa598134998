"""End-aware placement in the live scheduler: expected ends from the handlers' run times."""

from __future__ import annotations

import numpy as np
import pytest

from boson.simulation.instances import place_instances_on_devices
from boson_services.scheduler.handlers import SchedulerHandlers
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.contract.messages import (
    ClusterSnapshot,
    GpuState,
    NodeState,
    ResourceRequest,
    ResourceVector,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
    TaskUsage,
)
from boson_shared.contract.topology import Names
from boson_shared.scheduling.demand import LinearDemandModel
from boson_shared.scheduling.horizon import NodeHorizon
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.scores import Strategy
from boson_shared.scheduling.table import NodeTable
from tests.support.fakes import Clock

NOW = 1_700_000_000.0
DAY = 86_400.0
WEEK = 7 * DAY
NODES = {"big-0": (96.0, 384.0, 8), "big-1": (96.0, 384.0, 8), "small": (104.0, 512.0, 2)}
"""Two 8-GPU nodes and a 2-GPU one."""


def scheduler(end_aware: bool = True, strategy: Strategy = "binpack-fgd") -> SchedulerHandlers:
    sched = SchedulerHandlers(
        names=Names("end-aware"),
        strategy=strategy,
        demand_model=LinearDemandModel(),
        reservation_ttl_s=1e9,
        ingress_max_age_s=60.0,
        end_aware=end_aware,
        clock=Clock(),
        wall_clock=lambda: NOW,
    )
    sched.on_snapshot(snapshot())
    return sched


def snapshot(seq: int = 1, running: int = 0, dead: str = "") -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="m",
        seq=seq,
        nodes=tuple(
            NodeState(
                node_id=node_id,
                alive=node_id != dead,
                capacity=ResourceVector(cpu=cpu, memory=memory, gpu=gpus),
                allocated=ResourceVector(),
                slots=8,
                running=running,
                free_slots=8,
                measured_cpu=0.0,
                measured_memory=0.0,
                last_heartbeat_at=NOW,
                gpus=tuple(GpuState(index=j, model="A100") for j in range(gpus)),
            )
            for node_id, (cpu, memory, gpus) in NODES.items()
        ),
    )


def submitted(task_id: str, handler: str, gpu: float, cpu: float = 12.0) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=task_id,
        handler=handler,
        reply_to="client-1",
        requests=ResourceRequest(cpu=cpu, memory=cpu * 2, gpu=gpu),
        timeout_s=WEEK,
        submitted_at=NOW,
    )


def result(task_id: str, handler: str, wall_s: float) -> TaskResult:
    return TaskResult(
        task_id=task_id,
        handler=handler,
        status="succeeded",
        usage=TaskUsage(wall_s=wall_s, cpu_s=wall_s, peak_memory_bytes=1),
        reply_to="client-1",
        submitted_at=NOW - wall_s,
        finished_at=NOW,
    )


def node_of(sched: SchedulerHandlers, task: TaskSubmitted) -> str | None:
    (placed,) = [e.message for e in sched.place([task]) if isinstance(e.message, TaskPlaced)]
    return placed.node_id


def busy(end_aware: bool = True) -> SchedulerHandlers:
    """A binpack scheduler whose first 8-GPU node holds a minute's 7-GPU task."""
    sched = scheduler(end_aware, "binpack")
    sched.on_result(result("old", "infer", 60.0))
    assert node_of(sched, submitted("seven", "infer", 7)) == "big-0"
    return sched


def test_a_long_running_handlers_next_task_goes_to_the_smallest_node_that_fits() -> None:
    sched = busy()
    # Its handler's runs took two days: the next one-GPU task goes to the 2-GPU node.
    sched.on_result(result("old", "train", 2 * DAY))
    assert node_of(sched, submitted("t1", "train", 1)) == "small"
    # Where the strategy alone puts it: the last GPU of the fullest node.
    plain = busy(end_aware=False)
    plain.on_result(result("old", "train", 2 * DAY))
    assert node_of(plain, submitted("t1", "train", 1)) == "big-0"


def test_a_handler_that_reports_short_runs_is_left_to_the_strategy() -> None:
    sched = busy()
    # No run time yet: its week-long timeout stands in, so it is long work.
    assert node_of(sched, submitted("t1", "tune", 1)) == "small"
    # Its runs take a minute: short work, the strategy's choice.
    sched.on_result(result("t1", "tune", 60.0))
    assert node_of(sched, submitted("t2", "tune", 1)) == "big-0"


def test_a_result_without_usage_reports_its_run_time_by_its_start() -> None:
    sched = scheduler()
    quick = result("t0", "infer", 60.0).model_copy(update={"usage": None, "started_at": NOW - 60})
    sched.on_result(quick)
    assert sched.ends.run_times.expected("infer", WEEK) == pytest.approx(60.0)


def test_long_small_work_does_not_take_the_last_large_node_and_matches_the_simulator() -> None:
    """The live scheduler and the simulator's step place by the same code, given the same ends."""
    sched = scheduler()
    table = NodeTable()
    for node_id, (cpu, memory, gpus) in NODES.items():
        table.upsert(node_id, (cpu, memory, float(gpus)))
    placer = Placer(table, "binpack-fgd")
    placer.horizon = NodeHorizon()
    tasks = [
        submitted("whole", "train", 8, cpu=64.0),
        submitted("pair", "train", 2, cpu=20.0),
        submitted("one", "train", 1),
    ]
    live = [node_of(sched, task) for task in tasks]
    simulated = []
    for task in tasks:
        assert task.requests is not None
        demand = np.array([task.requests.cpu, task.requests.memory, task.requests.gpu])
        nodes, _ = place_instances_on_devices(placer, table, demand, 1, (NOW, NOW + WEEK, NOW))
        simulated.append(table.node_ids[int(nodes[0])] if nodes.size else None)
    # The one-GPU week waits rather than take big-1, the last 8-GPU node to free soon.
    assert live == simulated == ["big-0", "small", None]
    plain = scheduler(end_aware=False)
    assert [node_of(plain, task) for task in tasks][2] == "big-1"


def test_a_node_that_runs_nothing_any_more_or_died_frees_its_horizon() -> None:
    sched = scheduler()
    assert node_of(sched, submitted("whole", "train", 8, cpu=64.0)) == "big-0"
    horizon = sched.ends.horizon
    assert horizon is not None
    row = sched.table.index_of("big-0")
    assert horizon.until(row + 1)[row] == NOW + WEEK
    # Held for the placement: a snapshot that does not show it yet keeps the horizon.
    sched.on_snapshot(snapshot(seq=2))
    assert horizon.until(row + 1)[row] == NOW + WEEK
    sched.on_result(result("whole", "train", 3600.0))
    sched.on_snapshot(snapshot(seq=3))
    assert horizon.until(row + 1)[row] == -np.inf
    # A node that dies loses what it ran, held or not.
    assert node_of(sched, submitted("again", "train", 8, cpu=64.0)) == "big-0"
    sched.on_snapshot(snapshot(seq=4, running=1, dead="big-0"))
    assert horizon.until(row + 1)[row] == -np.inf


def test_end_aware_placement_is_on_by_default_and_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert SchedulerSettings().end_aware
    monkeypatch.setenv("BOSON_END_AWARE", "false")
    assert not SchedulerSettings().end_aware
    assert scheduler(end_aware=False).placer.horizon is None
