"""Reclaim with a :class:`DeviceRoom`: a claimant's GPU share fits a node only
where one device has that share free, not wherever the node's GPU total does."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from boson_shared.scheduling.admission import Admission, DeviceRoom, Devices, Running
from boson_shared.scheduling.tenants import parse_tenants

TENANTS = """
[tenants.a]
quota = { cpu = 2, memory = 2, gpu = 1 }
may_preempt = true
[tenants.b]
quota = { cpu = 0.5, memory = 0.5 }
"""
"""b borrows more than one CPU: either of its instances may be stopped."""


class Nodes:
    """Nodes of one CPU and one memory each, with GPU devices (milli free,
    milli capacity) held by work outside admission; instances go to the
    nodes in ``order``, the first with room."""

    def __init__(self, devices: Sequence[list[int]], order: Sequence[int]) -> None:
        self.room = {n: [1.0, 1.0] for n in range(len(devices))}
        self.device_free = {n: list(d) for n, d in enumerate(devices)}
        self.order = list(order)
        self.where: dict[int, int] = {}

    def place(self, offer: Running) -> int:
        for node in self.order:
            pairs = list(zip(offer.demand[:2], self.room[node], strict=True))
            if all(d <= f for d, f in pairs):
                self.room[node] = [f - d for d, f in pairs]
                self.where[id(offer)] = node
                return 1
        return 0

    def free(self, node: Hashable) -> Sequence[float]:
        assert isinstance(node, int)
        return (*self.room[node], sum(self.device_free[node]) / 1000)

    def nodes(self, run: Running) -> Sequence[Hashable]:
        return [self.where[id(run)]]


class DeviceNodes(Nodes):
    """The same nodes, telling reclaim their devices."""

    def devices(self, node: Hashable) -> Devices | None:
        assert isinstance(node, int)
        count = len(self.device_free[node])
        return list(self.device_free[node]), [1000] * count, [""] * count

    def devices_held(self, run: Running, position: int) -> int:
        return 0  # b's work holds no GPU


def reclaimed_nodes(nodes: Nodes) -> list[Hashable]:
    adm = Admission(parse_tenants(TENANTS), grace_s=30.0)
    adm.set_pool((2, 2, 3))
    adm.submit("b-old", "b", (1, 1, 0), 0.0)
    adm.submit("b-young", "b", (1, 1, 0), 1.0)
    nodes.order = [1, 0]  # the older instance on node 1, the younger on node 0
    assert adm.admit(1.0, nodes.place) == 2
    adm.submit("a0", "a", (1, 1, 0.6), 2.0)
    assert adm.admit(2.0, nodes.place) == 0  # no CPU free: a's claim starts
    victims = adm.reclaim(40.0, nodes)
    return [node for victim in victims for node in victim.nodes]


def test_a_gpu_share_is_reclaimed_where_one_device_has_it_free() -> None:
    # Node 0's two devices have 0.4 free each (0.8 in all), node 1's one
    # device is free. a's task needs one CPU and 0.6 of one device: stopping
    # b's younger instance (on node 0) frees the CPU where no device takes
    # 0.6, so the older one on node 1 is stopped instead.
    nodes = DeviceNodes([[400, 400], [1000]], [1, 0])
    assert isinstance(nodes, DeviceRoom)
    assert reclaimed_nodes(nodes) == [1]


def test_without_devices_the_node_total_is_the_gpu_room() -> None:
    # What reclaim sees without devices: node 0's 0.8 GPU in all seems to
    # take 0.6, so the younger instance there is the victim.
    nodes = Nodes([[400, 400], [1000]], [1, 0])
    assert not isinstance(nodes, DeviceRoom)
    assert reclaimed_nodes(nodes) == [0]
