"""The admission gate tells reclaim each node's GPU devices, not only their total."""

from __future__ import annotations

from boson_services.balancer.tenancy import HELD, AdmissionGate
from boson_shared.scheduling.admission import DeviceRoom, Running
from boson_shared.scheduling.tenants import parse_tenants
from tests.support.balancer import dispatcher
from tests.unit.test_balancer_gpu_devices import gpu_snapshot, share

TENANTS = """
[tenants.a]
quota = { cpu = 1, gpu = 1 }
may_preempt = true
"""


def run_of(task_id: str) -> Running:
    return Running(task_id, 0, (1.0, 1.0, 0.6), 1, 0, 0.0, 0.0, 0.0, 0, 0)


async def test_reclaim_sees_the_gpu_room_of_each_device() -> None:
    d = dispatcher()
    d.on_snapshot(gpu_snapshot({"a": [("T4", 0), ("T4", 0)]}))
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
