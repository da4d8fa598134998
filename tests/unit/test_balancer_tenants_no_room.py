"""The balancer's admission gate ends a pass when no node can take anything."""

from __future__ import annotations

from boson_shared.contract.messages import ResourceVector
from boson_shared.scheduling.admission import Offer
from tests.unit.test_balancer_tenants import Balancer

# Small enough that the nodes keep room once their credit is spent.
SMALL = ResourceVector(cpu=0.1, memory=0.1)


async def test_a_pass_with_no_credit_anywhere_offers_one_task() -> None:
    balancer = Balancer()
    await balancer.start()
    for k in range(4):  # two nodes, two credits each
        balancer.place(f"b{k}", "b", demand=SMALL)
    await balancer.settle()
    assert len(balancer.assigned_ids()) == 4
    for tenant in ("a", "b", "c"):
        for k in range(4, 10):
            balancer.place(f"{tenant}{k}", tenant, demand=SMALL)
    await balancer.settle()
    assert balancer.gate.admission.waiting("a") == 6
    offers: list[Offer] = []
    place = balancer.gate._place

    def counting(offer: Offer) -> int:
        offers.append(offer)
        return place(offer)

    balancer.gate._place = counting  # type: ignore[method-assign]
    assert balancer.gate.admit() == 0
    assert len(offers) == 1
    # Credit back: the next pass admits again, in admission order.
    await balancer.finish("b0")
    assert len(balancer.assigned_ids()) == 5
    assert balancer.assigned_ids()[-1] == "a4"
