"""GPU devices in the node table: exact accounting, one feasibility rule, placement per device."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.scheduling import scores
from boson_shared.scheduling.fgd_scoring import FGD_WEIGHT
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.scores import STRATEGIES, Strategy
from boson_shared.scheduling.table import GpuDevice, NodeTable


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_drift_many_fractional_allocations_then_a_whole_node_task_places(
    strategy: Strategy,
) -> None:
    """After many fractional allocations and releases an empty 8-GPU node holds an 8-GPU task."""
    table = NodeTable()
    table.upsert("n0", (96.0, 512.0, 8.0))
    placer = Placer(table, strategy)
    rng = random.Random(7)
    shares = (0.1, 0.2, 0.3, 0.25, 0.7, 0.05, 0.45)
    held: list[tuple[int, tuple[float, float, float], tuple[int, ...]]] = []
    for _ in range(400):
        if held and rng.random() < 0.5:
            i, demand, devices = held.pop(rng.randrange(len(held)))
            table.release(i, demand, devices)
            continue
        demand = (0.5, 1.0, rng.choice(shares))
        got = placer.place(demand)
        if got.index is not None:
            held.append((got.index, demand, got.devices))
    for i, demand, devices in held:
        table.release(i, demand, devices)
    assert np.all(table.allocated == 0.0)
    got = placer.place((1.0, 1.0, 8.0))
    assert got.status == "placed"


def test_thirteen_six_tenths_do_not_fit_eight_gpus() -> None:
    """A 0.6-GPU task needs 0.6 of ONE device: eight fit an 8-GPU node, not thirteen."""
    table = NodeTable()
    table.upsert("n0", (96.0, 512.0, 8.0))
    placer = Placer(table, "binpack-fgd")
    got = [placer.place((1.0, 1.0, 0.6)) for _ in range(13)]
    placed = [p for p in got if p.status == "placed"]
    assert len(placed) == 8
    assert sorted(d for p in placed for d in p.devices) == list(range(8))
    assert [p.status for p in got[8:]] == ["waiting"] * 5
    # A 0.4 share still fits each device's remainder.
    assert placer.place((1.0, 1.0, 0.4)).status == "placed"


def test_whole_gpus_are_whole_devices_on_one_node() -> None:
    table = NodeTable()
    table.upsert("a", (64.0, 256.0, 4.0))
    table.upsert("b", (64.0, 256.0, 4.0))
    placer = Placer(table, "binpack")
    share = placer.place((1.0, 1.0, 0.5))
    assert share.status == "placed"
    assert len(share.devices) == 1
    four = placer.place((1.0, 1.0, 4.0))
    assert four.status == "placed"
    assert four.node_id != share.node_id
    assert four.devices == (0, 1, 2, 3)
    # Three free devices and a half on the other node: no room for four whole ones.
    assert placer.place((1.0, 1.0, 4.0)).status == "waiting"
    assert placer.place((1.0, 1.0, 3.0)).devices == tuple(
        j for j in range(4) if j not in share.devices
    )
    # Larger than any node: never.
    assert placer.place((1.0, 1.0, 5.0)).status == "never"


def test_gpu_model_limits_the_devices_that_qualify() -> None:
    table = NodeTable()
    table.upsert("t4", (32.0, 64.0, 2.0), devices=[GpuDevice("T4", 15360)] * 2)
    table.upsert(
        "mixed",
        (32.0, 64.0, 2.0),
        devices=[GpuDevice("V100M16", 16384), GpuDevice("A100", 40960)],
    )
    placer = Placer(table, "spread")
    got = placer.place((1.0, 1.0, 1.0), gpu_model="A100|H100")
    assert (got.node_id, got.devices) == ("mixed", (1,))
    assert placer.place((1.0, 1.0, 0.5), gpu_model="A100|H100").status == "waiting"
    assert placer.place((1.0, 1.0, 0.5), gpu_model="P100").status == "never"
    assert table.devices(1)[1] == GpuDevice("A100", 40960)
    with pytest.raises(ValueError, match="gpu_model"):
        placer.place((1.0, 1.0, 0.5), gpu_model="A100|(.*)")


def test_releases_return_the_books_exactly() -> None:
    table = NodeTable()
    i = table.upsert("n0", (8.0, 8.0, 8.0))
    masks = [table.allocate(i, (0.0, 0.0, 0.1)) for _ in range(30)]
    assert table.allocated[i, 2] == 3.0
    for m in masks:
        table.release(i, (0.0, 0.0, 0.1), m)
    assert table.allocated[i, 2] == 0.0
    assert table.device_allocated[i].tolist() == [0] * 8
    with pytest.raises(ValueError, match="does not fit"):
        table.allocate(i, (0.0, 0.0, 0.5), devices=[0, 1])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 8), min_size=1, max_size=5),
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.75, 1.0, 2.0, 4.0, 8.0]),
            st.booleans(),
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(STRATEGIES),
)
def test_no_device_over_committed_and_no_share_spread(
    gpus: list[int], steps: list[tuple[float, bool]], strategy: Strategy
) -> None:
    """Whatever is placed and released: no device holds more than itself, no share spans two."""
    table = NodeTable()
    for k, count in enumerate(gpus):
        table.upsert(f"n{k}", (64.0, 64.0, float(count)))
    placer = Placer(table, strategy)
    held: list[tuple[int, float, tuple[int, ...]]] = []
    for gpu, release in steps:
        if release and held:
            i, g, devices = held.pop(0)
            table.release(i, (1.0, 1.0, g), devices)
        else:
            got = placer.place((1.0, 1.0, gpu))
            if got.index is None:
                assert not table.feasible(np.array([1.0, 1.0, gpu])).any()
                continue
            if gpu == 0:
                assert got.devices == ()
            elif gpu < 1:
                assert len(got.devices) == 1
            else:
                assert len(got.devices) == int(gpu)
            held.append((got.index, gpu, got.devices))
        dalloc = table.device_allocated
        assert np.all(dalloc <= table.device_capacity)
        assert np.all(dalloc >= 0)
        assert np.array_equal(table.allocated[:, 2], dalloc.sum(axis=1) / 1000)
    expected = np.zeros_like(table.device_allocated)
    for i, g, devices in held:
        for j in devices:
            expected[i, j] += 1000 if g >= 1 else round(g * 1000)
    assert np.array_equal(table.device_allocated, expected)


def weng_fragmentation(
    free: list[int], cap: list[int], node_free: tuple[float, float], points: np.ndarray
) -> float:
    """Weng et al.'s expected GPU fragmentation of one node, device by device, in plain Python."""
    total = sum(free)
    acc = 0.0
    for cpu, memory, gpu in points.tolist():
        milli = round(gpu * 1000)
        if milli == 0:  # a task without GPU can use none of it
            acc += total
            continue
        if milli < 1000:
            can = any(f >= milli for f in free)
            small = sum(f for f in free if f < milli)
        else:
            whole = sum(1 for f, c in zip(free, cap, strict=True) if c == 1000 and f == 1000)
            can = whole >= -(-milli // 1000)
            small = sum(f for f in free if f < 1000)
        others = node_free[0] + 1e-9 >= cpu and node_free[1] + 1e-9 >= memory
        acc += small if can and others else total
    return acc / int(points.shape[0])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([0, 0, 100, 250, 400, 500, 600, 1000]), min_size=1, max_size=8),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([0.1, 0.25, 0.4, 0.5, 0.75, 1.0, 2.0]),
)
def test_binpack_fgd_scores_gpu_fragmentation_device_by_device(
    held: list[list[int]], gpu: float
) -> None:
    """Each node's score is binpack minus the change of Weng et al.'s fragmentation, per GPU."""
    table = NodeTable()
    for k, row in enumerate(held):
        table.upsert(
            f"n{k}",
            (64.0, 256.0, float(len(row))),
            allocated=(8.0, 16.0, sum(row) / 1000),
            device_allocated=row,
        )
    points = np.array([[1.0, 2.0, 0.25], [1.0, 2.0, 0.5], [2.0, 4.0, 1.0], [1.0, 2.0, 0.0]])
    demand = np.array([1.0, 2.0, gpu])
    got = scores.scores(table, "binpack-fgd", demand, points)
    w = scores.weights(table.capacity)
    after = scores.weighted_sum(table.allocated, w) + scores.demand_term(demand, w)
    for i in range(len(table)):
        if np.isnan(got[i]):
            assert not table.feasible(demand)[i]
            continue
        cap = table.device_capacity[i].tolist()
        free = [c - a for c, a in zip(cap, table.device_allocated[i].tolist(), strict=True)]
        node_free = (64.0 - 8.0, 256.0 - 16.0)
        before = weng_fragmentation(free, cap, node_free, points)
        mask = table.pick_devices(i, gpu)
        milli = round(gpu * 1000)
        per = milli if milli < 1000 else 1000
        later_free = [f - per if mask >> j & 1 else f for j, f in enumerate(free)]
        later = weng_fragmentation(
            later_free, cap, (node_free[0] - 1.0, node_free[1] - 2.0), points
        )
        want = after[i] - FGD_WEIGHT * ((later - before) / 1000) / len(held[i])
        assert got[i] == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_binpack_fgd_fills_the_remnant_a_share_fits() -> None:
    """A 0.4 share goes where 0.4 is left on one device, not onto a whole free one.

    Plain binpack takes the fuller node (its CPU and memory are half used) and
    breaks a whole device there.
    """
    table = NodeTable()
    table.upsert("whole", (64.0, 256.0, 2.0), allocated=(32.0, 128.0, 0.0))
    table.upsert("remnant", (64.0, 256.0, 2.0), allocated=(0, 0, 0.6), device_allocated=[0, 600])
    assert Placer(table, "binpack").choose((1.0, 2.0, 0.4)) == 0
    placer = Placer(table, "binpack-fgd")
    placer.typical.observe(np.array([1.0, 2.0, 0.5]), 100)
    placer.typical.observe(np.array([1.0, 2.0, 1.0]), 100)
    got = placer.place((1.0, 2.0, 0.4))
    assert (got.node_id, got.devices) == ("remnant", (1,))
