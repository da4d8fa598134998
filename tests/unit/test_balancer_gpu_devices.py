"""The balancer picks GPU devices again wherever a task goes, under the table's fit rule."""

from __future__ import annotations

from boson_shared.contract.messages import (
    ClusterSnapshot,
    GpuState,
    NodeState,
    ResourceVector,
)
from tests.support.balancer import dispatcher


def gpu_snapshot(nodes: dict[str, list[tuple[str, int]]], seq: int = 1) -> ClusterSnapshot:
    """Nodes with GPU devices: per node, (model, milli held) per device."""
    return ClusterSnapshot(
        monitor_id="m",
        seq=seq,
        nodes=tuple(
            NodeState(
                node_id=node_id,
                alive=True,
                capacity=ResourceVector(cpu=100.0, memory=100.0, gpu=float(len(gpus))),
                allocated=ResourceVector(gpu=sum(h for _, h in gpus) / 1000),
                slots=8,
                running=0,
                free_slots=8,
                measured_cpu=0.1,
                measured_memory=0.1,
                last_heartbeat_at=0.0,
                gpus=tuple(
                    GpuState(index=j, model=m, allocated_milli=h) for j, (m, h) in enumerate(gpus)
                ),
            )
            for node_id, gpus in nodes.items()
        ),
    )


def share(gpu: float) -> ResourceVector:
    return ResourceVector(cpu=1.0, memory=1.0, gpu=gpu)


async def test_shares_go_one_device_each_and_the_scheduler_pick_stands_where_free() -> None:
    d = dispatcher()
    d.on_snapshot(gpu_snapshot({"a": [("T4", 0), ("T4", 0)]}))
    first = d.hold("t1", share(0.6), "a", devices=(1,))
    second = d.hold("t2", share(0.6), "a", devices=(1,))  # the scheduler's stale pick
    assert (first.result(), second.result()) == ("a", "a")
    assert d.devices_of("t1") == (1,)
    assert d.devices_of("t2") == (0,)  # device 1 has 0.4 left: picked again
    third = d.hold("t3", share(0.6), None)
    assert not third.done()  # 0.4 free on each device: no room for 0.6 on one
    d.complete("t1")
    assert third.result() == "a"
    assert d.devices_of("t3") == (1,)


async def test_whole_gpus_and_models_qualify_per_device() -> None:
    d = dispatcher()
    d.on_snapshot(
        gpu_snapshot({"t4": [("T4", 0)] * 4, "mixed": [("T4", 500), ("A100", 0), ("A100", 0)]})
    )
    two = d.hold("w", share(2.0), None, gpu_model="A100|H100")
    assert two.result() == "mixed"
    assert d.devices_of("w") == (1, 2)
    other = d.hold("x", share(1.0), None, gpu_model="A100")
    assert not other.done()
    d.complete("w")
    assert other.result() == "mixed"
