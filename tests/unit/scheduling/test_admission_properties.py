"""Properties of admission that must hold for any tenants and any load (hypothesis).

* a tenant never holds more than its guarantee plus its borrowing limit;
* nothing is preempted from a tenant within its guarantee;
* no tenant and no priority class starves while the pool is overloaded;
* the admission order is every tenant's rank, sorted, whatever happened.
"""

from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.scheduling.admission import Admission, Running
from boson_shared.scheduling.tenants import TenantsConfig, TenantSpec
from tests.unit.scheduling.admission_support import stop_one_above_guarantee, tenants_configs

Op = tuple[str, int, tuple[int, int], int, int]
SETTINGS = settings(max_examples=60, deadline=None)

config = tenants_configs(most=8)
op = st.tuples(
    st.sampled_from(["submit", "submit", "admit", "release", "reclaim"]),
    st.integers(0, 3),  # tenant
    st.tuples(st.integers(0, 3), st.integers(0, 3)),  # demand
    st.integers(1, 4),  # count
    st.sampled_from([-1000, 0, 100, 1000]),
)


def check_ceilings(adm: Admission) -> None:
    total = [0.0, 0.0, 0.0]
    for name in adm.names:
        usage = adm.usage(name)
        for r, (u, c) in enumerate(zip(usage, adm.ceiling(name), strict=True)):
            assert u <= c + 1e-6, (name, r, usage, adm.ceiling(name))
            total[r] += u
    for t, p in zip(total, adm.pool, strict=True):
        assert t <= p + 1e-6


def check_order(adm: Admission) -> None:
    # The admission order is kept by hand-written bisection over the ranks'
    # numbers (admission_lines._position): it must be every rank, sorted.
    assert adm._order == sorted(adm._ranks)


@SETTINGS
@given(
    config,
    st.tuples(st.integers(0, 16), st.integers(0, 16)),
    st.lists(op, max_size=60),
    st.integers(0, 2**16),
)
def test_ceilings_hold_and_only_borrowed_work_is_preempted(
    cfg: TenantsConfig, pool: tuple[int, int], ops: list[Op], seed: int
) -> None:
    rng = random.Random(seed)
    adm = Admission(cfg, grace_s=5.0)
    adm.set_pool((pool[0], pool[1], 0))
    runs: list[Running] = []
    now = 0.0
    names = adm.names

    def place(offer: Running) -> int:
        runs.append(offer)
        return rng.randint(0, offer.count)  # a placer may place fewer than offered

    for kind, who, (cpu, mem), count, prio in ops:
        now += rng.choice([0.0, 1.0, 10.0])
        name = names[who % len(names)]
        if kind == "submit":
            adm.submit(object(), name, (cpu, mem, 0), now, count=count, priority=prio)
        elif kind == "admit":
            adm.admit(now, place)
        elif kind == "release":
            live = [r for r in runs if r.count > 0]
            if live:
                adm.release(rng.choice(live), rng.randint(1, 3))
        else:
            usage = {n: list(adm.usage(n)) for n in names}
            guarantee = {n: adm.guarantee(n) for n in names}
            for victim in adm.reclaim(now):
                owner = names[victim.run.tenant]
                for _ in range(victim.count):
                    # Before each instance is stopped its tenant is above its
                    # guarantee on a resource the instance uses.
                    stop_one_above_guarantee(victim.run.demand, usage[owner], guarantee[owner])
        check_ceilings(adm)
        check_order(adm)


@SETTINGS
@given(config, st.tuples(st.integers(1, 16), st.integers(1, 16)), st.lists(op, max_size=60))
def test_after_a_pass_no_next_task_that_fits_is_left_waiting(
    cfg: TenantsConfig, pool: tuple[int, int], ops: list[Op]
) -> None:
    # With a placer that takes every offer, a pass leaves no tenant whose
    # next task fits its ceiling and the pool: skipping tenants on the bound
    # their refusals left must never skip one that could go.
    adm = Admission(cfg)
    adm.set_pool((pool[0], pool[1], 0))
    runs: list[Running] = []
    now = 0.0

    def place(offer: Running) -> int:
        runs.append(offer)
        return offer.count

    for kind, who, (cpu, mem), count, prio in ops:
        now += 1.0
        name = adm.names[who % len(adm.names)]
        if kind in ("submit", "reclaim"):
            adm.submit(object(), name, (cpu, mem, 0), now, count=count, priority=prio)
        elif kind == "release":
            live = [r for r in runs if r.count > 0]
            if live:
                adm.release(live[who % len(live)])
        adm.admit(now, place)
        free = [p - sum(adm.usage(n)[r] for n in adm.names) for r, p in enumerate(adm.pool)]
        for n in adm.names:
            demand = adm.next_demand(n)
            if demand is None:
                continue
            usage, ceiling = adm.usage(n), adm.ceiling(n)
            fits = all(
                d <= 0 or (u + d <= c + 1e-6 and d <= f + 1e-6)
                for d, u, c, f in zip(demand, usage, ceiling, free, strict=True)
            )
            assert not fits, (n, demand, usage, ceiling, free)


def test_no_tenant_and_no_priority_class_starves_under_overload() -> None:
    # One tenant floods the pool with top-priority work, faster than the pool
    # runs it, for the whole run; it and the others also submit work of
    # every other class now and then. The others start soon (fair share);
    # the flooder's low classes start within the priority span in aging
    # steps plus the work ahead of them, while the flood goes on.
    rng = random.Random(7)
    specs = {
        "flood": TenantSpec(quota={"cpu": 6}, weight=4, may_preempt=True),
        "small": TenantSpec(quota={"cpu": 1}, weight=1),
        "none": TenantSpec(weight=1),
    }
    adm = Admission(TenantsConfig(tenants=specs), aging_step_s=0.25, grace_s=2.0)
    adm.set_pool((8, 8, 0))
    ends: list[tuple[float, Running]] = []
    started: dict[object, float] = {}
    submitted: dict[object, tuple[str, int, float]] = {}
    now = 0.0

    def place(offer: Running) -> int:
        started[offer.key] = now
        ends.append((now + 2.0, offer))
        return 1

    def submit(name: str, prio: int) -> None:
        key = object()
        submitted[key] = (name, prio, now)
        adm.submit(key, name, (1, 0, 0), now, priority=prio)

    horizon = 2000.0
    while now < horizon:
        for _ in range(5):  # the pool runs four a second
            submit("flood", 1000)
        for name in specs:
            for prio in (-1000, 0, 500):
                if rng.random() < 0.01:
                    submit(name, prio)
        for _, run in [e for e in ends if e[0] <= now]:
            adm.release(run)
        ends = [e for e in ends if e[0] > now and e[1].count > 0]
        adm.admit(now, place)
        adm.reclaim(now)
        now += 1.0
    waits: dict[tuple[str, int], list[float]] = defaultdict(list)
    for key, (name, prio, since) in submitted.items():
        if prio == 1000 or since > horizon - 1000:
            continue
        assert key in started, f"{name} priority {prio} from {since} s never started"
        waits[(name, prio)].append(started[key] - since)
    for name in specs:
        for prio in (-1000, 0, 500):
            assert waits[(name, prio)], (name, prio)
            if name != "flood":
                assert max(waits[(name, prio)]) <= 5.0, (name, prio)
