"""Reclaim node by node: victims free room where the claimant's instances fit.

The pool is a handful of nodes here, and the caller (this file's
:class:`Nodes`) places each instance on one of them and tells reclaim what
each node has free and where each instance runs.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.scheduling.admission import EPSILON, Admission, Running, Victim
from boson_shared.scheduling.tenants import TenantsConfig, parse_tenants
from tests.unit.scheduling.admission_support import stop_one_above_guarantee, tenants_configs


class Nodes:
    """A tiny cluster: places instances node by node and is reclaim's NodeRoom."""

    def __init__(self, capacities: Sequence[tuple[float, float]], *, rotate: bool = False) -> None:
        self.free_room = {n: [c, m, 0.0] for n, (c, m) in enumerate(capacities)}
        self.where: dict[int, list[int]] = {}
        self.runs: list[Running] = []
        self.rotate = rotate
        """Start each offer's search at the next node (spreads work across nodes)."""
        self._next = 0

    def place(self, offer: Running) -> int:
        order = sorted(self.free_room)
        if self.rotate:
            k = self._next % len(order)
            order = order[k:] + order[:k]
            self._next += 1
        placed: list[int] = []
        for _ in range(offer.count):
            node = next((n for n in order if self._fits(offer.demand, n)), None)
            if node is None:
                break
            for r, d in enumerate(offer.demand):
                self.free_room[node][r] -= d
            placed.append(node)
        if placed:
            self.where[id(offer)] = placed
            self.runs.append(offer)
        return len(placed)

    def _fits(self, demand: Sequence[float], node: int) -> bool:
        return all(d <= f + EPSILON for d, f in zip(demand, self.free_room[node], strict=True))

    def free(self, node: Hashable) -> Sequence[float]:
        assert isinstance(node, int)
        return tuple(self.free_room[node])

    def nodes(self, run: Running) -> Sequence[Hashable]:
        return list(self.where.get(id(run), []))

    def end(self, run: Running, count: int, adm: Admission) -> None:
        """``count`` instances of ``run`` finish (the last ones)."""
        where = self.where[id(run)]
        for node in where[len(where) - count :]:
            self._give_back(run, node)
        del where[len(where) - count :]
        adm.release(run, count)

    def stop(self, victim: Victim) -> None:
        """Stop the instances reclaim named (admission already requeued them);
        any ``count`` of them, the last ones, when it named no node."""
        where = self.where[id(victim.run)]
        if not victim.nodes:
            for node in where[len(where) - victim.count :]:
                self._give_back(victim.run, node)
            del where[len(where) - victim.count :]
            return
        assert len(victim.nodes) == victim.count
        for named in victim.nodes:
            assert isinstance(named, int)
            where.reverse()
            where.remove(named)  # the last instance on that node
            where.reverse()
            self._give_back(victim.run, named)

    def _give_back(self, run: Running, node: int) -> None:
        for r, d in enumerate(run.demand):
            self.free_room[node][r] += d


PAIR = """
[tenants.a]
quota = { cpu = 4, memory = 4 }
may_preempt = true
[tenants.b]
quota = { cpu = 4, memory = 4 }
"""


def filled_by_b(nodes: Nodes) -> Admission:
    """Two nodes of 4 + 4; b's eight instances of 1 alternate between them."""
    adm = Admission(parse_tenants(PAIR), grace_s=30.0)
    adm.set_pool((8, 8, 0))
    for k in range(8):
        adm.submit(f"b{k}", "b", (1, 1, 0), float(k))
        adm.admit(float(k), nodes.place)
    assert adm.usage("b") == (8, 8, 0)
    adm.submit("a0", "a", (2, 2, 0), 10.0)
    assert adm.admit(10.0, nodes.place) == 0  # nothing free: a's claim starts
    return adm


def test_victims_on_the_pool_total_free_room_in_pieces_the_claimant_does_not_fit() -> None:
    # Why reclaim looks at nodes: b's two youngest instances sit on two
    # different nodes, so freeing them frees 2 in the pool but 1 on each
    # node, and a's instance of 2 still fits nowhere: the next pass gives
    # the room straight back to b's stopped instances.
    nodes = Nodes([(4, 4), (4, 4)], rotate=True)
    adm = filled_by_b(nodes)
    victims = adm.reclaim(40.0)
    assert sum(v.count for v in victims) == 2
    for v in victims:
        nodes.stop(v)
    assert sorted(n for free in nodes.free_room.values() for n in free[:2]) == [1, 1, 1, 1]
    assert adm.admit(40.0, nodes.place) == 2
    assert adm.usage("a") == (0, 0, 0)
    assert adm.usage("b") == (8, 8, 0)


def test_victims_chosen_node_by_node_make_room_the_claimant_fits() -> None:
    nodes = Nodes([(4, 4), (4, 4)], rotate=True)
    adm = filled_by_b(nodes)
    assert adm.reclaim(39.0, nodes) == []  # within the grace period
    victims = adm.reclaim(40.0, nodes)
    assert sum(v.count for v in victims) == 2
    assert len({node for v in victims for node in v.nodes}) == 1  # both on one node
    for v in victims:
        nodes.stop(v)
    assert adm.admit(40.0, nodes.place) == 1
    assert adm.usage("a") == (2, 2, 0)
    assert adm.usage("b") == (6, 6, 0)


def test_nothing_is_stopped_on_a_node_where_the_claimant_would_still_not_fit() -> None:
    # a's instance needs 3 of memory; the nodes hold 2 each, so no amount of
    # preemption on one node makes room: nothing is stopped at all.
    nodes = Nodes([(4, 2), (4, 2)])
    adm = Admission(parse_tenants(PAIR), grace_s=0.0)
    adm.set_pool((8, 4, 0))
    for k in range(4):
        adm.submit(f"b{k}", "b", (1, 1, 0), 0.0)
    adm.admit(0.0, nodes.place)
    adm.submit("a0", "a", (1, 3, 0), 1.0)
    adm.admit(1.0, nodes.place)
    assert adm.reclaim(2.0, nodes) == []
    assert adm.usage("b") == (4, 4, 0)


def test_the_tenant_furthest_above_its_share_is_preempted_first() -> None:
    # b and c both borrow; c (weight 1) is further above its fair share than
    # b (weight 4) although b's work is younger, so c's is stopped.
    adm = Admission(
        parse_tenants(
            """
            [tenants.a]
            quota = { cpu = 4 }
            may_preempt = true
            [tenants.b]
            quota = { cpu = 2 }
            weight = 4
            [tenants.c]
            quota = { cpu = 2 }
            """
        ),
        grace_s=0.0,
    )
    adm.set_pool((8, 8, 0))
    nodes = Nodes([(8, 8)])
    for k in range(4):
        adm.submit(f"c{k}", "c", (1, 0, 0), 0.0)
    adm.admit(0.0, nodes.place)
    for k in range(4):
        adm.submit(f"b{k}", "b", (1, 0, 0), 1.0)
    adm.admit(1.0, nodes.place)
    adm.submit("a0", "a", (2, 0, 0), 2.0)
    adm.admit(2.0, nodes.place)
    victims = adm.reclaim(3.0, nodes)
    assert {adm.names[v.run.tenant] for v in victims} == {"c"}
    assert sum(v.count for v in victims) == 2


configs = tenants_configs(most=6)
ops = st.lists(
    st.tuples(
        st.sampled_from(["submit", "submit", "admit", "end", "reclaim"]),
        st.integers(0, 3),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.integers(1, 3),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(
    configs,
    st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=4),
    ops,
    st.integers(0, 2**16),
)
def test_node_by_node_reclaim_keeps_every_rule(
    cfg: TenantsConfig,
    capacities: list[tuple[int, int]],
    script: list[tuple[str, int, tuple[int, int], int]],
    seed: int,
) -> None:
    # Every stopped instance belonged to a tenant above its guarantee on a
    # resource the instance uses, at the moment it was stopped; it runs on
    # the node named; no tenant goes past its ceiling; no node past its capacity.
    rng = random.Random(seed)
    nodes = Nodes([(float(c), float(m)) for c, m in capacities], rotate=True)
    adm = Admission(cfg, grace_s=5.0)
    adm.set_pool((sum(c for c, _ in capacities), sum(m for _, m in capacities), 0))
    names = adm.names
    now = 0.0
    for kind, who, (cpu, mem), count in script:
        now += rng.choice([0.0, 1.0, 10.0])
        name = names[who % len(names)]
        if kind == "submit":
            adm.submit(object(), name, (cpu, mem, 0), now, count=count)
        elif kind == "admit":
            adm.admit(now, nodes.place)
        elif kind == "end":
            live = [r for r in nodes.runs if r.count > 0]
            if live:
                run = rng.choice(live)
                nodes.end(run, min(run.count, count), adm)
        else:
            usage = {n: list(adm.usage(n)) for n in names}
            guarantee = {n: adm.guarantee(n) for n in names}
            where = {id(r): list(nodes.where.get(id(r), [])) for r in nodes.runs}
            for victim in adm.reclaim(now, nodes):
                owner = names[victim.run.tenant]
                for node in victim.nodes:
                    assert node in where[id(victim.run)]
                    where[id(victim.run)].remove(node)
                    stop_one_above_guarantee(victim.run.demand, usage[owner], guarantee[owner])
                nodes.stop(victim)
            adm.admit(now, nodes.place)
        for n in names:
            for u, c in zip(adm.usage(n), adm.ceiling(n), strict=True):
                assert u <= c + 1e-6
        for free in nodes.free_room.values():
            assert min(free) >= -1e-6


def test_a_claim_on_resources_no_quota_governs_frees_what_its_instances_need() -> None:
    # No quota names memory, so memory is not governed (the guarantee is
    # unbounded): the claim's room on it must not turn into a count.
    nodes = Nodes([(2, 4)])
    adm = Admission(
        parse_tenants(
            """
            [tenants.a]
            quota = { cpu = 1 }
            may_preempt = true
            [tenants.b]
            quota = { cpu = 1 }
            """
        ),
        grace_s=0.0,
    )
    adm.set_pool((2, 4, 0))
    for k in range(2):
        adm.submit(f"b{k}", "b", (1, 1, 0), 0.0)
    adm.admit(0.0, nodes.place)
    adm.submit("a0", "a", (1, 2, 0), 1.0)
    assert adm.admit(1.0, nodes.place) == 0
    victims = adm.reclaim(2.0, nodes)
    assert sum(v.count for v in victims) == 1
    for v in victims:
        nodes.stop(v)
    assert adm.admit(2.0, nodes.place) == 1


def test_withdrawn_work_leaves_its_line_and_the_pass_skips_it() -> None:
    adm = Admission(parse_tenants(PAIR))
    adm.set_pool((8, 8, 0))
    adm.submit("gone", "a", (1, 1, 0), 0.0, count=2)
    adm.submit("kept", "a", (1, 1, 0), 1.0)
    assert adm.withdraw("gone", "a") == 2
    assert adm.withdraw("gone", "a") == 0
    assert adm.waiting("a") == 1
    assert adm.pending("a") == (1, 1, 0)
    nodes = Nodes([(8, 8)])
    assert adm.admit(2.0, nodes.place) == 1
    assert [r.key for r in nodes.runs] == ["kept"]
    assert not adm.has_waiting()
