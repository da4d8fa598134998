"""The ``binpack-fgd`` fast path chooses exactly what the full rescore chooses (hypothesis).

Random tables and demand streams, placed in random batches while the typical
demand is learnt and refreshed live (a small window and cadence, so that it
moves often) and while others change the table in between: releases, nodes
dying, coming back and joining. Every choice is compared with the reference
(:mod:`tests.unit.scheduling.fgd_reference`), row for row.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.scheduling import fgd_index, scores
from boson_shared.scheduling.fgd_index import FgdIndex
from boson_shared.scheduling.placement import NodeTable, Placer
from boson_shared.scheduling.placement_outcomes import NEVER, WAITING
from boson_shared.scheduling.typical_demand import LongRunDemand
from tests.unit.scheduling import fgd_reference

# Quarters and small integers: exact fits, ties and floors landing on whole numbers are common.
amount = st.integers(min_value=0, max_value=48).map(lambda q: q / 4)
# A few node shapes, so that equal nodes (and tied scores) are common.
# No GPUs: the fast path serves tables without GPU devices (the per-device
# path is tested in test_gpu_devices).
shape = st.sampled_from([(8.0, 8.0, 0.0), (12.0, 6.0, 0.0), (3.0, 12.0, 0.0)])
capacity = st.one_of(shape, st.tuples(amount, amount, st.just(0.0)))
used = st.sampled_from([0.0, 1.0, 2.0, 5.5])
node = st.tuples(
    capacity, st.one_of(st.tuples(used, used, used), st.tuples(amount, amount, used)), st.booleans()
)
demand = st.tuples(
    st.integers(0, 24).map(lambda q: q / 4),
    st.integers(0, 24).map(lambda q: q / 4),
    st.just(0.0),
)
batch = st.lists(demand, min_size=1, max_size=12)
change = st.tuples(
    st.sampled_from(["release", "die", "revive", "join"]), st.integers(0, 30), capacity
)
step = st.one_of(batch.map(lambda b: ("place", b)), change.map(lambda c: ("change", c)))


def estimate() -> LongRunDemand:
    return LongRunDemand(window=16, refresh_every=3, seed=1)


class Reference:
    """The table and estimate as the full rescore leaves them."""

    def __init__(self, nodes: list[tuple[tuple[float, ...], tuple[float, ...], bool]]) -> None:
        self.cap = np.array([c for c, _, _ in nodes], dtype=np.float64)
        self.alloc = np.minimum(np.array([a for _, a, _ in nodes], dtype=np.float64), self.cap)
        self.alive = np.array([alive for _, _, alive in nodes], dtype=bool)
        self.typical = estimate()

    def place(self, demands: list[tuple[float, float, float]]) -> list[int]:
        self.typical.refresh()
        out = []
        for d in demands:
            vec = np.asarray(d, dtype=np.float64)
            points = self.typical.points
            if not np.any(points > 0):
                points = vec[None, :]
            i = fgd_reference.choose(self.cap, self.alloc, self.alive, vec, points)
            if i is None:
                out.append(-1)
                continue
            self.alloc[i] += vec
            self.typical.observe(vec)
            out.append(i)
        return out


def apply(change: tuple[str, int, tuple[float, ...]], table: NodeTable, ref: Reference) -> None:
    """The same change made by someone else to both tables."""
    kind, k, cap = change
    i = k % len(table)
    node_id = table.node_ids[i]
    if kind == "release":
        half = ref.alloc[i] / 2
        table.release(i, half)
        ref.alloc[i] = np.maximum(ref.alloc[i] - half, 0.0)
    elif kind in ("die", "revive"):
        table.set_alive(node_id, kind == "revive")
        ref.alive[i] = kind == "revive"
    else:
        table.upsert(f"joined-{len(table)}", cap)
        ref.cap = np.vstack([ref.cap, np.asarray(cap)])
        ref.alloc = np.vstack([ref.alloc, np.zeros(3)])
        ref.alive = np.append(ref.alive, True)


@settings(max_examples=150, deadline=None)
@given(st.lists(node, min_size=1, max_size=40), st.lists(step, min_size=1, max_size=14))
def test_the_fast_path_chooses_what_the_full_rescore_chooses(
    nodes: list[tuple[tuple[float, ...], tuple[float, ...], bool]],
    steps: list[tuple[str, object]],
) -> None:
    table = NodeTable(initial_capacity=2)
    for i, (cap, alloc, alive) in enumerate(nodes):
        table.upsert(f"n{i}", cap, allocated=np.minimum(alloc, cap), alive=alive)
    placer = Placer(table, "binpack-fgd")
    placer.typical = estimate()
    ref = Reference(nodes)
    for kind, what in steps:
        if kind == "change":
            apply(what, table, ref)  # type: ignore[arg-type]
            continue
        demands: list[tuple[float, float, float]] = what  # type: ignore[assignment]
        got = placer.place_batch(np.asarray(demands, dtype=np.float64)).indices.tolist()
        want = ref.place(demands)
        assert [i if i >= 0 else -1 for i in got] == want
        assert all(i in (WAITING, NEVER) for i in got if i < 0)
        np.testing.assert_array_equal(table.allocated, ref.alloc)


@pytest.mark.parametrize("slots", [1024, 2])
def test_slots_follow_a_demand_across_many_placements(
    slots: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recurring demand uses its slot; the slot stays right as the table fills.

    With two slots for five demands, slots change hands and the rest are scored afresh.
    """
    monkeypatch.setattr(fgd_index, "SLOT_BUDGET", slots * 300)
    rng = np.random.default_rng(3)
    cap = rng.choice([16.0, 32.0], size=(300, 3))
    cap[:, 2] = 0.0
    alloc = np.floor(cap * rng.uniform(0.0, 0.9, size=cap.shape) / 4) * 4  # many equal nodes
    table = NodeTable(initial_capacity=300)
    for i in range(300):
        table.upsert(f"n{i}", cap[i], allocated=alloc[i])
    placer = Placer(table, "binpack-fgd")
    placer.typical = estimate()
    ref = Reference([(tuple(c), tuple(a), True) for c, a in zip(cap, alloc, strict=True)])
    pool = rng.integers(0, 5, size=(5, 3)).astype(np.float64) / 2
    pool[:, 2] = 0.0
    for _ in range(40):
        demands = [tuple(d) for d in pool[rng.integers(0, 5, size=25)].tolist()]
        got = placer.place_batch(np.asarray(demands)).indices.tolist()
        assert [i if i >= 0 else -1 for i in got] == ref.place(demands)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 200))
def test_every_score_is_the_references_to_the_last_bit(seed: int, n: int) -> None:
    """Not only the choice: each node's score equals the full rescore's, bit for bit."""
    rng = np.random.default_rng(seed)
    cap = rng.uniform(0.5, 64.0, size=(n, 3)) * (rng.random((n, 3)) < 0.9)
    cap[:, 2] = 0.0  # the index serves tables without GPU devices
    table = NodeTable(initial_capacity=n)
    for i in range(n):
        table.upsert(f"n{i}", cap[i], allocated=cap[i] * rng.uniform(0.0, 1.0, size=3))
    points = np.sort(rng.uniform(0.0, 4.0, size=(3, 3)), axis=0)
    index = FgdIndex(table)
    index.sync(points)
    for demand in rng.uniform(0.0, 3.0, size=(5, 3)) * (1.0, 1.0, 0.0):
        got = np.empty(n)
        index.score(demand, got)
        want = np.nan_to_num(
            scores.scores(table, "binpack-fgd", demand, points), nan=-np.inf, neginf=-np.inf
        )
        np.testing.assert_array_equal(got, want)
