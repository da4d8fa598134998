"""Admission across tenants: order, ceilings, reclaiming (worked examples)."""

from __future__ import annotations

from collections.abc import Hashable

from boson_shared.scheduling.admission import Admission, Running
from boson_shared.scheduling.tenants import TenantsConfig, parse_tenants

TWO = """
[tenants.a]
quota = { cpu = 5 }
may_preempt = true
[tenants.b]
quota = { cpu = 5 }
"""


class Pool:
    """Places every offer in full and remembers the runs, as a caller would."""

    def __init__(self) -> None:
        self.runs: list[Running] = []
        self.order: list[Hashable] = []

    def place(self, offer: Running) -> int:
        self.runs.append(offer)
        self.order.extend([offer.key] * offer.count)
        return offer.count


def admission(text: str = TWO, pool: tuple[float, ...] = (10, 100, 0), **kw: float) -> Admission:
    adm = Admission(parse_tenants(text), **kw)  # type: ignore[arg-type]
    adm.set_pool(pool)
    return adm


def test_one_default_tenant_is_admitted_whenever_the_pool_has_room() -> None:
    adm = Admission(TenantsConfig.single())
    adm.set_pool((4, 4, 0))
    for k in range(6):
        adm.submit(k, "default", (1, 1, 0), 0.0)
    pool = Pool()
    assert adm.admit(0.0, pool.place) == 4
    assert pool.order == [0, 1, 2, 3]
    adm.release(pool.runs[0])
    assert adm.admit(1.0, pool.place) == 1
    assert pool.order[-1] == 4


def test_a_tenant_borrows_idle_capacity_up_to_its_limit() -> None:
    adm = admission(
        """
        [tenants.a]
        quota = { cpu = 5 }
        borrowing_limit = { cpu = 2 }
        [tenants.b]
        quota = { cpu = 5 }
        """
    )
    for k in range(10):
        adm.submit(k, "a", (1, 0, 0), 0.0)
    assert adm.admit(0.0, Pool().place) == 7
    assert adm.usage("a")[0] == 7
    assert adm.borrowed("a")[0] == 2


def test_strict_quotas_never_borrow() -> None:
    adm = admission(borrowing=False)
    for k in range(10):
        adm.submit(k, "a", (1, 0, 0), 0.0)
    assert adm.admit(0.0, Pool().place) == 5


def test_a_tenant_below_its_quota_goes_before_a_borrowing_one() -> None:
    adm = admission()
    for k in range(7):
        adm.submit(("b", k), "b", (1, 0, 0), 0.0)
    pool = Pool()
    adm.admit(0.0, pool.place)  # b: 7, of which 2 borrowed
    adm.submit(("b", 7), "b", (1, 0, 0), 1.0)
    adm.submit(("a", 0), "a", (1, 0, 0), 2.0)
    adm.release(pool.runs[0], 1)
    pool.order.clear()
    adm.admit(3.0, pool.place)
    assert pool.order[0] == ("a", 0)


def test_among_equals_the_smallest_weighted_dominant_share_goes_first() -> None:
    adm = admission(
        """
        [tenants.a]
        weight = 3
        [tenants.b]
        weight = 1
        """,
        pool=(8, 8, 0),
    )
    for k in range(8):
        adm.submit(("a", k), "a", (1, 1, 0), 0.0)
        adm.submit(("b", k), "b", (1, 1, 0), 0.0)
    adm.admit(0.0, Pool().place)
    assert adm.usage("a")[0] == 6
    assert adm.usage("b")[0] == 2


def test_dominant_share_counts_the_resource_a_tenant_uses_most() -> None:
    adm = admission("[tenants.a]\n[tenants.b]\n", pool=(9, 18, 0))
    for k in range(9):
        adm.submit(("a", k), "a", (1, 4, 0), 0.0)  # memory-heavy
        adm.submit(("b", k), "b", (3, 1, 0), 0.0)  # cpu-heavy
    adm.admit(0.0, Pool().place)
    # DRF's example: a gets 3 tasks (2/3 of memory), b gets 2 (2/3 of cpu).
    assert adm.usage("a") == (3.0, 12.0, 0.0)
    assert adm.usage("b") == (6.0, 2.0, 0.0)


def test_priority_first_within_a_tenant_then_the_callers_order() -> None:
    adm = admission("[tenants.a]\n", pool=(3, 3, 0))
    adm.submit("late-low", "a", (1, 0, 0), 0.0, order=2)
    adm.submit("early-low", "a", (1, 0, 0), 0.0, order=1)
    adm.submit("high", "a", (1, 0, 0), 0.0, priority=100, order=3)
    pool = Pool()
    adm.admit(0.0, pool.place)
    assert pool.order == ["high", "early-low", "late-low"]


def test_a_waiting_task_ages_past_newer_higher_priority_work() -> None:
    adm = admission("[tenants.a]\n", pool=(1, 1, 0), aging_step_s=1.0)
    adm.submit("old", "a", (1, 0, 0), 0.0, priority=0)
    adm.submit("new", "a", (1, 0, 0), 50.0, priority=10)
    pool = Pool()
    adm.admit(50.0, pool.place)
    assert pool.order == ["old"]


def test_a_pass_backfills_past_a_task_too_big_for_what_is_free() -> None:
    adm = admission("[tenants.a]\n", pool=(4, 4, 0))
    adm.submit("big", "a", (8, 0, 0), 0.0, order=0)
    adm.submit("small", "a", (1, 0, 0), 0.0, order=1)
    pool = Pool()
    adm.admit(0.0, pool.place)
    assert pool.order == ["small"]
    assert adm.waiting("a") == 1


def test_an_unplaceable_offer_stays_in_line() -> None:
    adm = admission("[tenants.a]\n", pool=(4, 4, 0))
    adm.submit("x", "a", (1, 0, 0), 0.0)
    assert adm.admit(0.0, lambda offer: 0) == 0
    assert adm.waiting("a") == 1
    assert adm.admit(1.0, Pool().place) == 1


def test_reclaim_waits_for_the_grace_period_then_preempts_youngest_borrowed_first() -> None:
    adm = admission(grace_s=30.0)
    for k in range(10):
        adm.submit(("b", k), "b", (1, 0, 0), float(k))
    pool = Pool()
    for k in range(10):  # one at a time, so each run is a task of its own age
        adm.admit(float(k), pool.place)
    for k in range(3):
        adm.submit(("a", k), "a", (1, 0, 0), 20.0)
    assert adm.admit(20.0, pool.place) == 0
    assert adm.reclaim(20.0) == []
    assert adm.next_reclaim() == 50.0
    assert adm.reclaim(49.9) == []
    victims = adm.reclaim(50.0)
    assert [v.run.key for v in victims] == [("b", 9), ("b", 8), ("b", 7)]
    assert adm.usage("b")[0] == 7
    # Preempted work is at the front of b's line; a now gets the room.
    pool.order.clear()
    adm.admit(50.0, pool.place)
    assert pool.order == [("a", 0), ("a", 1), ("a", 2)]
    adm.release(pool.runs[0])
    pool.order.clear()
    adm.admit(51.0, pool.place)
    assert pool.order == [("b", 7)]


def test_nothing_is_preempted_from_a_tenant_within_its_quota() -> None:
    adm = admission(grace_s=0.0)
    for k in range(5):
        adm.submit(("b", k), "b", (1, 0, 0), 0.0)
        adm.submit(("a", k), "a", (1, 0, 0), 0.0)
    adm.admit(0.0, Pool().place)
    adm.submit(("a", 5), "a", (1, 0, 0), 1.0)  # beyond a's quota: no claim
    adm.admit(1.0, Pool().place)
    assert adm.reclaim(100.0) == []


def test_a_tenant_that_may_not_preempt_only_waits() -> None:
    adm = admission(grace_s=0.0)
    for k in range(10):
        adm.submit(("a", k), "a", (1, 0, 0), 0.0)
    adm.admit(0.0, Pool().place)
    adm.submit(("b", 0), "b", (1, 0, 0), 1.0)
    adm.admit(1.0, Pool().place)
    assert adm.reclaim(100.0) == []


def test_no_preemption_when_borrowed_work_cannot_cover_the_claim() -> None:
    adm = admission(grace_s=0.0, pool=(10, 100, 0))
    for k in range(6):
        adm.submit(("b", k), "b", (1, 0, 0), 0.0)
    adm.admit(0.0, Pool().place)  # b borrows 1
    adm.submit("a-big", "a", (5, 0, 0), 1.0)
    adm.admit(1.0, Pool().place)  # 4 free, 5 needed: the 1 borrowed covers it
    victims = adm.reclaim(1.0)
    assert sum(v.count for v in victims) == 1
    adm2 = admission(grace_s=0.0, pool=(10, 100, 0))
    for k in range(10):
        adm2.submit(("b", k), "b", (1, 0, 0), 0.0)
    adm2.admit(0.0, Pool().place)
    adm2.set_pool((8, 100, 0))  # nodes died: guarantees shrink to 4 each
    adm2.submit("a-big", "a", (5, 0, 0), 1.0)  # beyond a's shrunk guarantee
    adm2.admit(1.0, Pool().place)
    assert adm2.reclaim(1.0) == []


def test_a_smaller_pool_shrinks_guarantees_in_proportion() -> None:
    adm = admission(pool=(10, 100, 0))
    assert adm.guarantee("a")[0] == 5
    adm.set_pool((6, 100, 0))
    assert adm.guarantee("a")[0] == 3
    assert adm.guarantee("a")[1] == float("inf")  # memory is not governed


def test_an_unknown_tenant_is_a_key_error() -> None:
    adm = admission()
    try:
        adm.submit("x", "nobody", (1, 0, 0), 0.0)
    except KeyError:
        return
    raise AssertionError("submitted to an unknown tenant")


def test_two_claims_in_one_reclaim_each_get_their_own_room() -> None:
    # a and c borrow the whole pool; b and d reclaim together. Room freed for
    # b must not count as d's: both get their guarantee back in one call.
    adm = admission(
        """
        [tenants.a]
        quota = { cpu = 50 }
        [tenants.b]
        quota = { cpu = 25 }
        may_preempt = true
        [tenants.c]
        quota = { cpu = 12.5 }
        [tenants.d]
        quota = { cpu = 12.5 }
        may_preempt = true
        """,
        pool=(100, 100, 0),
        grace_s=0.0,
    )
    adm.submit("a", "a", (1, 0, 0), 0.0, count=60)
    adm.submit("c", "c", (1, 0, 0), 0.0, count=40)
    adm.admit(0.0, Pool().place)
    adm.submit("b", "b", (1, 0, 0), 1.0, count=40)
    adm.submit("d", "d", (1, 0, 0), 1.0, count=20)
    adm.admit(1.0, Pool().place)
    victims = adm.reclaim(1.0)
    assert sum(v.count for v in victims) >= 37.5
    adm.admit(1.0, Pool().place)
    assert adm.usage("b")[0] == 25
    assert adm.usage("d")[0] >= 12


def test_free_room_the_placer_refused_does_not_count_toward_a_claim() -> None:
    adm = admission(grace_s=0.0)
    for k in range(8):
        adm.submit(("b", k), "b", (1, 0, 0), 0.0)
    adm.admit(0.0, Pool().place)  # b: 8 (3 borrowed), 2 free but in pieces
    adm.submit("a", "a", (2, 0, 0), 1.0)
    adm.admit(1.0, lambda offer: 0)  # the placer finds no node for it
    victims = adm.reclaim(1.0)
    assert sum(v.count for v in victims) == 2
