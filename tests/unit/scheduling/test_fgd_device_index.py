"""The per-device ``binpack-fgd`` index scores and chooses exactly as the full rescore (hypothesis).

Random tables with GPU devices of two models (some partly used, some nodes
without GPUs, some dead), and streams of demands mixing shares of one
device, whole devices, no GPU and ``gpu_model`` constraints, with releases in
between. Each demand is compared under the same typical demand points the
index scores against: every node's score bit for bit, the node chosen and the
devices it gets.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.scheduling import scores
from boson_shared.scheduling.fgd_device_index import DeviceFgdIndex
from boson_shared.scheduling.horizon import NodeHorizon
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.table import GpuDevice, NodeTable
from boson_shared.scheduling.typical_demand import LongRunDemand

SETTINGS = settings(max_examples=80, deadline=None)

gpu = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.6, 1.0, 2.0, 4.0, 8.0])
cores = st.integers(0, 16).map(float)
node = st.tuples(
    st.sampled_from([(8.0, 32.0), (16.0, 64.0), (96.0, 512.0), (2.0, 4.0)]),
    st.integers(0, 8),  # devices
    st.sampled_from(["A100-SXM4", "V100"]),
    st.lists(st.integers(0, 1000), max_size=8),  # held per device
    st.booleans() | st.just(True),  # alive, mostly
)
demand = st.tuples(
    cores,
    st.integers(0, 64).map(float),
    gpu,
    st.sampled_from([None, None, None, "A100", "V100|A100"]),
)
# The typical demand: the GPU the bottleneck (small CPU and memory beside it).
point = st.tuples(st.integers(0, 4).map(float), st.integers(0, 16).map(float), gpu)
points = st.lists(point, min_size=1, max_size=4).filter(lambda ps: any(p[2] > 0 for p in ps))
step = st.tuples(demand, st.floats(0.0, 1.0))


def build(spec: list[tuple[tuple[float, float], int, str, list[int], bool]]) -> NodeTable:
    table = NodeTable(initial_capacity=2)
    for i, ((c, m), g, model, held, alive) in enumerate(spec):
        devices = [GpuDevice(model)] * g
        table.upsert(
            f"n{i}",
            (c, m, float(g)),
            allocated=(c / 2, m / 4, 0.0),
            devices=devices,
            device_allocated=held[:g],
            alive=alive,
        )
    return table


@SETTINGS
@given(
    st.lists(node, min_size=1, max_size=10).filter(lambda ns: any(n[1] for n in ns)),
    points,
    st.lists(step, min_size=1, max_size=30),
)
def test_scores_and_choice_equal_full_rescore(
    spec: list[tuple[tuple[float, float], int, str, list[int], bool]],
    pts: list[tuple[float, float, float]],
    steps: list[tuple[tuple[float, float, float, str | None], float]],
) -> None:
    table = build(spec)
    typical = np.array(pts)
    index = DeviceFgdIndex(table)
    held: list[tuple[int, np.ndarray, int]] = []
    for (c, m, g, model), u in steps:
        vec = np.array([c, m, g])
        models = None if model is None else frozenset(model.split("|"))
        if not index.serves(typical):
            return  # another dimension is the bottleneck: the non-device path's
        got, best = index.scores(vec, typical, models)
        want = scores.scores(table, "binpack-fgd", vec, typical, models)
        np.testing.assert_array_equal(got, want)  # bit for bit, nan where it does not fit
        chosen = scores.best(table, "binpack-fgd", want)
        assert (best if best >= 0 else None) == chosen
        if chosen is not None:
            held.append((chosen, vec, table.allocate(chosen, vec, models=models)))
        if held and u < 0.3:  # someone else releases: the index catches up with the row
            row, old, mask = held.pop(int(u * 100) % len(held))
            table.release(row, old, mask)


@SETTINGS
@given(
    st.lists(node, min_size=1, max_size=10).filter(lambda ns: any(n[1] for n in ns)),
    points,
    st.lists(demand, min_size=1, max_size=20),
)
def test_placer_picks_the_node_and_devices_of_the_full_rescore(
    spec: list[tuple[tuple[float, float], int, str, list[int], bool]],
    pts: list[tuple[float, float, float]],
    ds: list[tuple[float, float, float, str | None]],
) -> None:
    """Through the placer, under the demand points it scores against."""
    table, reference = build(spec), build(spec)
    placer = Placer(table, "binpack-fgd")
    placer.typical = LongRunDemand(window=16, refresh_every=3, seed=1)  # moves often
    for p in pts:
        placer.typical.observe(np.array(p))
    for c, m, g, model in ds:
        vec = np.array([c, m, g])
        placer.typical.refresh()  # what place() does first; idempotent
        typical = placer.typical.points
        models = None if model is None else frozenset(model.split("|"))
        want = scores.choose(reference, "binpack-fgd", vec, typical, models)
        got = placer.place(vec, model)
        assert got.index == want
        if want is not None:
            mask = reference.allocate(want, vec, models=models)
            assert got.devices == tuple(j for j in range(64) if mask >> j & 1)
        np.testing.assert_array_equal(table.device_allocated, reference.device_allocated)


class FullRescorePlacer(Placer):
    """The placer with every per-device placement scored by the full rescore."""

    def _device_scores(
        self, vec: np.ndarray, models: frozenset[str] | None
    ) -> tuple[np.ndarray, int | None]:
        s = scores.scores(self.table, self.strategy, vec, self._typical, models)
        return s, scores.best(self.table, self.strategy, s)


@SETTINGS
@given(
    st.lists(node, min_size=1, max_size=10).filter(lambda ns: any(n[1] for n in ns)),
    points,
    st.lists(
        st.tuples(st.lists(demand, min_size=1, max_size=6), st.sampled_from([10.0, 2e5])),
        min_size=1,
        max_size=8,
    ),
)
def test_end_aware_batches_place_as_the_full_rescore(
    spec: list[tuple[tuple[float, float], int, str, list[int], bool]],
    pts: list[tuple[float, float, float]],
    batches: list[tuple[list[tuple[float, float, float, str | None]], float]],
) -> None:
    """End-aware placement (the simulator's, with a horizon) filters the index's scores alike."""
    fast_table, full_table = build(spec), build(spec)
    fast, full = Placer(fast_table, "binpack-fgd"), FullRescorePlacer(full_table, "binpack-fgd")
    now = 0.0
    for placer in (fast, full):
        placer.horizon = NodeHorizon()
        for p in pts:
            placer.typical.observe(np.array(p))
    for ds, runs_for in batches:
        now += 100.0
        matrix = np.array([(c, m, g) for c, m, g, _ in ds])
        models = [model for *_, model in ds]
        ends = (now, now + runs_for, now - 50.0)
        a = fast.place_batch(matrix, models, ends=ends)
        b = full.place_batch(matrix, models, ends=ends)
        assert a.indices.tolist() == b.indices.tolist()
        assert a.masks is not None
        assert b.masks is not None
        assert a.masks.tolist() == b.masks.tolist()
    np.testing.assert_array_equal(fast_table.device_allocated, full_table.device_allocated)
