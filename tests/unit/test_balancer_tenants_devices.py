"""The admission gate tells reclaim each node's GPU devices, not only their total."""

from __future__ import annotations

from boson_services.balancer.tenancy import HELD, AdmissionGate
from boson_shared.contract.messages import ClusterSnapshot, GpuState, NodeState, ResourceVector
from boson_shared.scheduling.admission import DeviceRoom, Running
from boson_shared.scheduling.tenants import parse_tenants
from tests.support.balancer import dispatcher

TENANTS = """
[tenants.a]
quota = { cpu = 1, gpu = 1 }
may_preempt = true
"""


def two_free_t4s(node_id: str) -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="m",
        seq=1,
        nodes=(
            NodeState(
                node_id=node_id,
                alive=True,
                capacity=ResourceVector(cpu=100.0, memory=100.0, gpu=2.0),
                allocated=ResourceVector(),
                slots=8,
                running=0,
                free_slots=8,
                measured_cpu=0.1,
                measured_memory=0.1,
                last_heartbeat_at=0.0,
                gpus=(GpuState(index=0, model="T4"), GpuState(index=1, model="T4")),
            ),
        ),
    )


def share(gpu: float) -> ResourceVector:
    return ResourceVector(cpu=1.0, memory=1.0, gpu=gpu)


def run_of(task_id: str) -> Running:
    return Running(task_id, 0, (1.0, 1.0, 0.6), 1, 0, 0.0, 0.0, 0.0, 0, 0)


async def test_reclaim_sees_the_gpu_room_of_each_device() -> None:
    d = dispatcher()
    d.on_snapshot(two_free_t4s("a"))
    gate = AdmissionGate(parse_tenants(TENANTS), d, grace_s=30.0)
    assert isinstance(gate, DeviceRoom)
    first = d.hold("t1", share(0.6), "a", devices=(0,))
    second = d.hold("t2", share(0.6), "a", devices=(1,))
    assert (first.result(), second.result()) == ("a", "a")
    # 0.8 GPU free in all, but 0.4 on each device: no 0.6 share fits there.
    assert gate.free("a")[2] == 0.8
    assert gate.devices("a") == ([400, 400], [1000, 1000])
    assert gate.devices_held(run_of("t1"), 0) == 0b01
    assert gate.devices_held(run_of("t2"), 0) == 0b10
    # Work the dispatcher still holds has no devices: its room is its total.
    assert gate.devices(HELD) is None
    assert gate.devices("gone") == ([], [])
