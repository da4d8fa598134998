"""GPU fields on the wire: what is refused, and older versions still read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from boson_services.scheduler.handlers import SchedulerHandlers
from boson_shared.contract.messages import (
    ClusterSnapshot,
    GpuState,
    NodeHeartbeat,
    NodeState,
    ResourceRequest,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import Names
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.scheduling.demand import LinearDemandModel
from tests.support.fakes import Clock


def test_a_gpu_request_of_one_or_more_must_be_whole_devices() -> None:
    assert ResourceRequest(gpu=0.25).gpu == 0.25
    assert ResourceRequest(gpu=8).gpu == 8
    with pytest.raises(ValidationError, match="whole devices"):
        ResourceRequest(gpu=1.5)
    with pytest.raises(ValidationError):
        ResourceRequest(gpu=63)


@pytest.mark.parametrize("bad", ["", "A100|", "|A100", "A100|(.*)", "A" * 65, "x;y"])
def test_a_gpu_model_is_names_separated_by_bars(bad: str) -> None:
    with pytest.raises(ValidationError):
        ResourceRequest(gpu=1, gpu_model=bad)
    assert ResourceRequest(gpu=1, gpu_model="A100|H100 80GB|V100M16").gpu_model


def test_devices_are_indices_a_node_can_have() -> None:
    task = TaskSubmitted(task_id="t", handler="noop", reply_to="c")
    with pytest.raises(ValidationError):
        TaskAssigned(task=task, demand=ResourceVector(gpu=1), node_id="n", devices=(62,))
    with pytest.raises(ValidationError):
        TaskPlaced(
            task=task, demand=ResourceVector(gpu=1), node_id="n", strategy="s", devices=(-1,)
        )
    with pytest.raises(ValidationError):
        GpuState(index=0, allocated_milli=1001)


def test_older_versions_still_validate() -> None:
    """A v2 placement and a v1 heartbeat have no GPU fields: they read as no devices."""
    assert {2} <= TaskPlaced.also_reads
    assert {2} <= TaskAssigned.also_reads
    assert {2} <= TaskSubmitted.also_reads
    assert {1} <= NodeHeartbeat.also_reads
    task = TaskSubmitted(task_id="t", handler="noop", reply_to="c")
    old = TaskAssigned.model_validate(
        {"task": task.model_dump(), "demand": {"gpu": 0.5}, "node_id": "n"}
    )
    assert old.devices == ()


def gpu_snapshot(seq: int, held: list[int]) -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="m",
        seq=seq,
        nodes=(
            NodeState(
                node_id="g",
                alive=True,
                capacity=ResourceVector(cpu=100, memory=100, gpu=2),
                allocated=ResourceVector(gpu=sum(held) / 1000),
                slots=4,
                running=0,
                free_slots=4,
                measured_cpu=0.1,
                measured_memory=0.1,
                last_heartbeat_at=0.0,
                gpus=tuple(
                    GpuState(index=j, model="T4", memory_mib=15360, allocated_milli=h)
                    for j, h in enumerate(held)
                ),
            ),
        ),
    )


def placed_of(emits: list[Emit]) -> list[TaskPlaced | TaskResult]:
    return [e.message for e in emits if isinstance(e.message, TaskPlaced | TaskResult)]


def gpu_task(task_id: str, gpu: float, model: str | None = None) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=task_id,
        handler="noop",
        reply_to="c",
        requests=ResourceRequest(gpu=gpu, gpu_model=model),
        submitted_at=0.0,
    )


def test_the_scheduler_places_devices_and_refuses_a_model_no_node_has() -> None:
    sched = SchedulerHandlers(
        names=Names("gpu-test"),
        strategy="binpack-fgd",
        demand_model=LinearDemandModel(),
        reservation_ttl_s=10.0,
        ingress_max_age_s=1e12,
        clock=Clock(),
        wall_clock=lambda: 1.0,
    )
    sched.on_snapshot(gpu_snapshot(1, [0, 600]))
    out = placed_of(sched.place([gpu_task("a", 0.4), gpu_task("b", 1), gpu_task("c", 1, "A100")]))
    a, b, c = out
    assert isinstance(a, TaskPlaced)
    assert (a.node_id, a.devices) == ("g", (1,))
    assert isinstance(b, TaskPlaced)
    assert (b.node_id, b.devices) == ("g", (0,))
    assert isinstance(c, TaskResult)
    assert c.status == "failed"
    assert c.error is not None
    assert "gpu_model=A100" in c.error.message
    # The next snapshot does not show them yet: the reservations keep their devices.
    sched.on_snapshot(gpu_snapshot(2, [0, 600]))
    assert sched.table.device_allocated[0].tolist() == [1000, 1000]
    (d,) = placed_of(sched.place([gpu_task("d", 0.1)]))
    assert isinstance(d, TaskPlaced)
    assert d.node_id is None  # waits: no device has 0.1 left
