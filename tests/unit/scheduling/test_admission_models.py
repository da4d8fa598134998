"""Reclaim for a claimant limited to some GPU models (``gpu_model``): work is
stopped only where the room it frees is on a device of a model the claimant
allows, never on a node of another model, where it would free nothing usable."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from boson_shared.scheduling.admission import Admission, DeviceRoom, Devices, Running
from boson_shared.scheduling.admission_reclaim import claim_slots
from boson_shared.scheduling.admission_state import Waiting
from boson_shared.scheduling.devices import parse_models
from boson_shared.scheduling.tenants import parse_tenants

BORROWS_ALL = """
[tenants.a]
quota = { cpu = 1, memory = 1, gpu = 1 }
may_preempt = true
[tenants.b]
"""
"""b has no quota: both its instances are borrowed."""

BORROWS_ONE = """
[tenants.a]
quota = { cpu = 1, memory = 1, gpu = 1 }
may_preempt = true
[tenants.b]
quota = { cpu = 1, memory = 1, gpu = 1 }
"""
"""b may always use one of its two instances: only one may be stopped."""

MODELS = ("V100-SXM2-16GB", "A100-SXM4-40GB")
"""Node 0 has one V100, node 1 one A100."""


class TwoModels:
    """Two nodes of one CPU, one memory and one GPU device each; instances go
    to the nodes in ``order``, the first with room."""

    def __init__(self, order: Sequence[int]) -> None:
        self.room = {0: [1.0, 1.0, 1.0], 1: [1.0, 1.0, 1.0]}
        self.order = list(order)
        self.where: dict[int, int] = {}

    def place(self, offer: Running) -> int:
        for node in self.order:
            pairs = list(zip(offer.demand, self.room[node], strict=True))
            if all(d <= f for d, f in pairs):
                self.room[node] = [f - d for d, f in pairs]
                self.where[id(offer)] = node
                return 1
        return 0

    def free(self, node: Hashable) -> Sequence[float]:
        assert isinstance(node, int)
        return tuple(self.room[node])

    def nodes(self, run: Running) -> Sequence[Hashable]:
        return [self.where[id(run)]]

    def devices(self, node: Hashable) -> Devices | None:
        assert isinstance(node, int)
        return [round(self.room[node][2] * 1000)], [1000], [MODELS[node]]

    def devices_held(self, run: Running, position: int) -> int:
        return 0b1 if run.demand[2] > 0 else 0


def reclaimed_nodes(tenants: str, models: str | None) -> list[Hashable]:
    """b's older instance runs on the A100 node, its younger on the V100 one;
    a's task (one CPU, one GPU of ``models``) waits past its grace: the nodes
    reclaim stops work on."""
    adm = Admission(parse_tenants(tenants), grace_s=30.0)
    adm.set_pool((2, 2, 2))
    nodes = TwoModels([1, 0])
    assert isinstance(nodes, DeviceRoom)
    adm.submit("b-old", "b", (1, 1, 1), 0.0)
    adm.submit("b-young", "b", (1, 1, 1), 1.0)
    assert adm.admit(1.0, nodes.place) == 2
    adm.submit("a0", "a", (1, 1, 1), 2.0, models=parse_models(models))
    assert adm.admit(2.0, nodes.place) == 0  # the pool is full: a's claim starts
    victims = adm.reclaim(40.0, nodes)
    return [node for victim in victims for node in victim.nodes]


def test_work_on_a_device_of_another_model_is_not_stopped() -> None:
    # The youngest borrowed instance is on the V100: stopping it would free
    # a device a's A100 task cannot use. The older one, on the A100, goes.
    assert reclaimed_nodes(BORROWS_ALL, "A100") == [1]


def test_a_node_of_another_model_does_not_use_up_what_may_be_stopped() -> None:
    # Only one of b's instances may be stopped: the one on the V100, counted
    # first, must not be the one that takes b down to its guarantee.
    assert reclaimed_nodes(BORROWS_ONE, "A100") == [1]


def test_a_claimant_of_any_model_takes_the_youngest_as_before() -> None:
    assert reclaimed_nodes(BORROWS_ALL, None) == [0]
    assert reclaimed_nodes(BORROWS_ALL, "A100|V100") == [0]


def test_a_model_no_node_has_stops_nothing() -> None:
    assert reclaimed_nodes(BORROWS_ALL, "H100") == []


def test_the_slots_carry_each_waiting_task_s_models() -> None:
    a100 = parse_models("A100")
    line = [
        Waiting("x", 0, (1.0, 1.0, 1.0), 1, 0, 0.0, 0.0, False, models=a100),
        Waiting("y", 0, (1.0, 1.0, 0.0), 1, 0, 1.0, 0.0, False),
    ]
    assert claim_slots(line, (4.0, 4.0, 4.0), 4) == [
        ((1.0, 1.0, 1.0), 1, a100),
        ((1.0, 1.0, 0.0), 1, None),
    ]


def test_a_preempted_task_keeps_its_models_in_its_line() -> None:
    # A victim goes back to its line from its running handle: its models too,
    # so a later reclaim for it still sees them.
    adm = Admission(parse_tenants(BORROWS_ALL), grace_s=30.0)
    adm.set_pool((2, 2, 2))
    a100 = parse_models("A100")
    adm.submit("b0", "b", (1, 1, 1), 0.0, models=a100)
    assert adm.admit(0.0, lambda offer: 1) == 1
    (run,) = adm.running()
    assert run.models == a100
    adm.requeue(run, 1)
    ((*_, waiting),) = adm._tenants[adm.index["b"]].line
    assert waiting.models == a100
