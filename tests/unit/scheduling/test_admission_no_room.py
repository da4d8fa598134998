"""Admission passes the placer ends early or refuses: bounded offers, same order."""

from __future__ import annotations

from collections.abc import Callable, Hashable

from boson_shared.scheduling.admission import NO_ROOM, Admission, Running
from boson_shared.scheduling.tenants import parse_tenants

TENANTS = 20
TASKS = 20


def many_tenants() -> Admission:
    text = "".join(f"[tenants.t{k}]\nquota = {{ cpu = 5 }}\n" for k in range(TENANTS))
    adm = Admission(parse_tenants(text))
    adm.set_pool((100 * TENANTS, 1000 * TENANTS, 0))
    for k in range(TENANTS):
        for j in range(TASKS):
            adm.submit((k, j), f"t{k}", (1, 1, 0), float(j))
    return adm


def test_a_placer_with_no_room_anywhere_ends_the_pass_after_one_offer() -> None:
    adm = many_tenants()
    offers: list[Hashable] = []

    def no_room(offer: Running) -> int:
        offers.append(offer.key)
        return NO_ROOM

    assert adm.admit(0.0, no_room) == 0
    assert len(offers) == 1
    assert adm.waiting("t0") == TASKS


def test_after_a_pass_ended_early_the_order_is_the_same_as_without() -> None:
    ended, fresh = many_tenants(), many_tenants()
    ended.admit(0.0, lambda offer: NO_ROOM)
    order: dict[str, list[Hashable]] = {"ended": [], "fresh": []}

    def placer(name: str) -> Callable[[Running], int]:
        def place(offer: Running) -> int:
            order[name].append(offer.key)
            return offer.count

        return place

    assert ended.admit(1.0, placer("ended")) == fresh.admit(1.0, placer("fresh"))
    assert order["ended"]
    assert order["ended"] == order["fresh"]


def test_a_task_the_placer_refused_is_not_offered_again_in_the_same_pass() -> None:
    adm = Admission(parse_tenants("[tenants.a]\n"))
    adm.set_pool((100, 100, 0))
    adm.submit("big", "a", (50, 1, 0), 0.0)
    for j in range(5):
        adm.submit(f"small{j}", "a", (1, 1, 0), 1.0 + j)
    offered: list[Hashable] = []

    def place(offer: Running) -> int:
        offered.append(offer.key)
        return 0 if offer.key == "big" else offer.count

    # The small ones fill in behind the big one (backfill), one at a time.
    assert adm.admit(0.0, place) == 5
    assert offered.count("big") == 1
    assert [k for k in offered if k != "big"] == [f"small{j}" for j in range(5)]
    assert adm.waiting("a") == 1
