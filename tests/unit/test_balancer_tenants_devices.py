"""The admission gate tells reclaim each node's GPU devices, not only their total."""

from __future__ import annotations

import asyncio

from boson_services.balancer.handlers import BalancerHandlers
from boson_services.balancer.tenancy import HELD, AdmissionGate, Preemption
from boson_shared.contract.messages import (
    ClusterSnapshot,
    GpuState,
    NodeState,
    ResourceRequest,
    ResourceVector,
    TaskPlaced,
    TaskSubmitted,
)
from boson_shared.contract.topology import Names
from boson_shared.scheduling.admission import DeviceRoom, Running
from boson_shared.scheduling.tenants import parse_tenants
from tests.support.balancer import dispatcher
from tests.support.fakes import Clock, Published

TENANTS = """
[tenants.a]
quota = { cpu = 1, gpu = 1 }
may_preempt = true
"""


def two_free_t4s(node_id: str) -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="m", seq=1, nodes=(gpu_node(node_id, ("T4", "T4"), size=100.0, slots=8),)
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
    assert gate.devices("a") == ([400, 400], [1000, 1000], ["T4", "T4"])
    assert gate.devices_held(run_of("t1"), 0) == 0b01
    assert gate.devices_held(run_of("t2"), 0) == 0b10
    # Work the dispatcher still holds has no devices: its room is its total.
    assert gate.devices(HELD) is None
    assert gate.devices("gone") == ([], [], [])


MODELS_TENANTS = """
[tenants.a]
quota = { cpu = 1, memory = 1, gpu = 1 }
may_preempt = true
[tenants.b]
"""


def one_gpu_node(node_id: str, model: str) -> NodeState:
    return gpu_node(node_id, (model,), size=1.0, slots=2)


def gpu_node(node_id: str, models: tuple[str, ...], *, size: float, slots: int) -> NodeState:
    """An idle node of ``size`` CPU and memory, ``slots`` slots and one free GPU per model."""
    return NodeState(
        node_id=node_id,
        alive=True,
        capacity=ResourceVector(cpu=size, memory=size, gpu=float(len(models))),
        allocated=ResourceVector(),
        slots=slots,
        running=0,
        free_slots=slots,
        measured_cpu=0.1,
        measured_memory=0.1,
        last_heartbeat_at=0.0,
        gpus=tuple(GpuState(index=i, model=m) for i, m in enumerate(models)),
    )


def placed_on(task_id: str, tenant: str, node_id: str | None, gpu_model: str | None) -> TaskPlaced:
    task = TaskSubmitted(
        task_id=task_id,
        handler="noop",
        reply_to="c1",
        tenant=tenant,
        requests=ResourceRequest(cpu=1.0, memory=1.0, gpu=1.0, gpu_model=gpu_model),
    )
    return TaskPlaced(
        message_id=f"{task_id}.placed",
        task=task,
        demand=ResourceVector(cpu=1.0, memory=1.0, gpu=1.0),
        node_id=node_id,
        strategy="test",
    )


async def test_reclaim_stops_work_where_the_claimants_gpu_model_is() -> None:
    clock = Clock(100.0)
    d = dispatcher(clock)
    gate = AdmissionGate(parse_tenants(MODELS_TENANTS), d, grace_s=30.0, clock=clock)
    published = Published()
    handlers = BalancerHandlers(d, Names("models"), published, park_after_s=600.0, gate=gate)
    snap = ClusterSnapshot(
        monitor_id="m",
        seq=1,
        nodes=(one_gpu_node("x", "A100-SXM4-40GB"), one_gpu_node("v", "V100-SXM2-16GB")),
    )
    await handlers.on_event(snap)
    handlers.placed_seen = True  # the active one from the start: no takeover census
    runs = [
        asyncio.ensure_future(handlers.on_placed(placed_on("b-old", "b", "x", None))),
    ]
    await asyncio.sleep(0)
    runs.append(asyncio.ensure_future(handlers.on_placed(placed_on("b-young", "b", "v", None))))
    for _ in range(5):
        await asyncio.sleep(0)
    assert d.where == {"b-old": "x", "b-young": "v"}
    runs.append(asyncio.ensure_future(handlers.on_placed(placed_on("a1", "a", None, "A100"))))
    for _ in range(5):
        await asyncio.sleep(0)
    assert gate.tickets["a1"].waiting
    clock.now += 31.0
    # b's youngest task holds the V100, which a1 cannot use: the A100's goes.
    assert gate.reclaim() == [Preemption("x", ("b-old",))]
    for run in runs:
        run.cancel()
