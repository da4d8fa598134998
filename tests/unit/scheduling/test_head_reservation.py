"""The head reservation and EASY backfill, pure: where, when, what may backfill, lapse."""

from __future__ import annotations

import numpy as np
import pytest

from boson_shared.scheduling.head_reservation import (
    RESERVATION_LAPSE_S,
    DeviceRoom,
    HeadReservation,
    RunTimes,
    sorted_releases,
)
from boson_shared.scheduling.head_reservation import plan_reservation as plan


def plan_reservation(
    key: object,
    demand: np.ndarray,
    count: int,
    free: np.ndarray,
    alive: np.ndarray,
    rows: np.ndarray,
    ends: np.ndarray,
    amounts: np.ndarray,
    now: float,
    lapse_s: float = RESERVATION_LAPSE_S,
) -> HeadReservation | None:
    """The planner fed the running work as arrays, in end order."""
    releases = sorted_releases(np.asarray(rows), np.asarray(ends, np.float64), amounts)
    return plan(key, demand, count, free, alive, releases, now, lapse_s)


NONE_RUNNING = (np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 3)))


def vec(*values: float) -> np.ndarray:
    return np.asarray([*values, *([0.0] * (3 - len(values)))], np.float64)


def test_the_node_that_frees_soonest_is_reserved_with_what_is_left_beside_the_head() -> None:
    free = np.array([vec(1, 1), vec(0, 0), vec(2, 2)])
    # Node 0 frees 3 at t=20; node 1 frees 2 at t=5 and 2 more at t=8;
    # node 2 frees 1 at t=30.
    rows = np.array([0, 1, 1, 2])
    ends = np.array([20.0, 5.0, 8.0, 30.0])
    amounts = np.array([vec(3, 3), vec(2, 2), vec(2, 2), vec(1, 1)])
    alive = np.ones(3, np.bool_)
    res = plan_reservation("big", vec(4, 4), 1, free, alive, rows, ends, amounts, now=0.0)
    assert res is not None
    assert res.rows.tolist() == [1]
    assert res.start.tolist() == [8.0]
    assert res.spare.tolist() == [[0.0, 0.0, 0.0]]
    assert res.promised_start == 8.0
    assert res.lapses_at == RESERVATION_LAPSE_S
    # Two instances: one per node, the two soonest.
    two = plan_reservation("big", vec(4, 4), 2, free, alive, rows, ends, amounts, now=0.0)
    assert two is not None
    assert two.rows.tolist() == [1, 0]
    assert two.start.tolist() == [8.0, 20.0]
    assert two.promised_start == 20.0


def test_releases_at_one_instant_count_together_and_overdue_ones_count_as_now() -> None:
    free = np.array([vec(0, 0)])
    rows = np.array([0, 0])
    ends = np.array([3.0, 3.0])
    amounts = np.array([vec(2, 2), vec(2, 2)])
    res = plan_reservation("h", vec(3, 3), 1, free, np.ones(1, np.bool_), rows, ends, amounts, 10.0)
    assert res is not None
    assert res.start.tolist() == [10.0]  # both ended late: expected now
    assert res.spare.tolist() == [[1.0, 1.0, 0.0]]


def test_no_reservation_where_no_node_will_ever_have_room() -> None:
    free = np.array([vec(1, 1), vec(1, 1)])
    rows, ends, amounts = np.array([0]), np.array([5.0]), np.array([vec(1, 1)])
    alive = np.array([True, False])
    assert plan_reservation("h", vec(8, 8), 1, free, alive, rows, ends, amounts, 0.0) is None
    # A dead node is never reserved, however much it would free.
    alive_one = np.array([False, True])
    res = plan_reservation("h", vec(1, 1), 1, free, alive_one, rows, ends, amounts, 0.0)
    assert res is not None
    assert res.rows.tolist() == [1]
    assert plan_reservation("h", vec(8, 8), 1, free, alive, *NONE_RUNNING, 0.0) is None


def test_backfill_only_where_it_does_not_delay_the_reservation() -> None:
    free = np.array([vec(2, 2), vec(4, 4)])
    rows, ends, amounts = np.array([0]), np.array([10.0]), np.array([vec(4, 4)])
    alive = np.ones(2, np.bool_)
    res = plan_reservation("h", vec(5, 5), 1, free, alive, rows, ends, amounts, 0.0)
    assert res is not None
    assert res.rows.tolist() == [0]
    assert res.start.tolist() == [10.0]
    assert res.spare.tolist() == [[1.0, 1.0, 0.0]]
    # Ends by the start: anything that fits now.
    assert res.admits(0, vec(2, 2), end=10.0)
    # Runs past it: only within the room left beside the head.
    assert not res.admits(0, vec(2, 2), end=11.0)
    assert res.admits(0, vec(1, 1), end=11.0)
    # Another node is not reserved.
    assert res.admits(1, vec(4, 4), end=1e9)
    # A task that ends before the start uses none of the spare; one that runs past it does.
    res.commit(0, vec(2, 2), end=9.0)
    assert res.spare.tolist() == [[1.0, 1.0, 0.0]]
    res.commit(0, vec(1, 1), end=11.0)
    assert not res.admits(0, vec(1, 1), end=11.0)


def test_a_reservation_lapses_after_its_time_and_at_once_when_ended() -> None:
    free = np.array([vec(0, 0)])
    rows, ends, amounts = np.array([0]), np.array([100.0]), np.array([vec(1, 1)])
    res = plan_reservation(
        "h", vec(1, 1), 1, free, np.ones(1, np.bool_), rows, ends, amounts, 5.0, lapse_s=60.0
    )
    assert res is not None
    assert not res.lapsed(64.9)
    assert res.lapsed(65.0)
    res.end_now()
    assert res.lapsed(5.0)


def test_run_times_follow_reports_and_fall_back_to_the_timeout() -> None:
    times = RunTimes(default_s=42.0)
    assert times.expected("h", None) == 42.0
    assert times.expected("h", 30.0) == 30.0
    times.observe("h", 10.0)
    assert times.expected("h", 300.0) == 10.0
    times.observe("h", 20.0)  # longer: followed fast
    assert times.expected("h", 300.0) == pytest.approx(15.0)
    times.observe("h", 5.0)  # shorter: followed slowly
    assert times.expected("h", 300.0) == pytest.approx(14.0)
    assert times.expected("h", 12.0) == 12.0  # never past its own limit
    assert times.expected("other", None) == 42.0


def run_stream(reserve: bool) -> tuple[float, float]:
    """Two 4-unit nodes, 1-unit tasks of 10 s every 1.5 s (first fit), one
    4-unit task at t=50: when it starts, and the start it was promised."""
    capacity = np.array([vec(4, 4), vec(4, 4)])
    running: list[tuple[int, float, np.ndarray]] = []  # (row, end, demand)
    waiting: list[tuple[str, np.ndarray, float]] = []
    res = None
    promised = np.inf
    big = vec(4, 4)
    t = 0.0
    while t <= 300.0:
        running = [r for r in running if r[1] > t]
        if t % 1.5 == 0:
            waiting.append((f"s{t}", vec(1, 1), 10.0))
        if t == 50.0:
            waiting.insert(0, ("big", big, 10.0))
        allocated = np.zeros_like(capacity)
        for row, _, d in running:
            allocated[row] += d
        kept = []
        for key, d, length in waiting:
            free = capacity - allocated
            fits = [i for i in range(2) if np.all(free[i] >= d)]
            if res is not None and key != res.key:
                fits = [i for i in fits if res.admits(i, d, t + length)]
            if fits:
                i = fits[0]
                allocated[i] += d
                running.append((i, t + length, d))
                if res is not None and key == res.key:
                    return t, promised
                if res is not None:
                    res.commit(i, d, t + length)
                continue
            kept.append((key, d, length))
            if reserve and key == "big" and res is None:
                res = plan_reservation(
                    key,
                    d,
                    1,
                    capacity - allocated,
                    np.ones(2, np.bool_),
                    np.array([r for r, _, _ in running], np.int64),
                    np.array([e for _, e, _ in running]),
                    np.array([dd for _, _, dd in running]).reshape(-1, 3),
                    t,
                )
                assert res is not None
                promised = res.promised_start
        waiting = kept
        t += 0.5
    return np.inf, promised


def test_a_whole_node_task_behind_a_stream_of_small_ones_starts_as_promised() -> None:
    started, promised = run_stream(reserve=True)
    # Everything running at t=50 has ended by t=60.
    assert promised <= 60.0
    assert started <= promised
    # The same stream without the reservation starves it.
    starved, _ = run_stream(reserve=False)
    assert starved == np.inf


def eight_devices(held: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One 8-GPU node's devices as (free, cap) rows, ``held`` milli-units on each."""
    cap = np.full(8, 1000, np.int64)
    return cap - np.asarray(held, np.int64), cap


def test_a_whole_gpu_head_is_planned_on_devices_that_free_whole_not_on_a_gpu_total() -> None:
    # Node 0: every device holds a long 0.6-GPU share: 3.2 GPUs free in
    # total, but no whole device. Node 1: eight whole-GPU tasks, two of
    # which (devices 2 and 5) end at t=50.
    free0, cap = eight_devices([600] * 8)
    free1, _ = eight_devices([1000] * 8)
    devices = DeviceRoom(np.array([free0, free1]), np.array([cap, cap]), np.ones((2, 8), np.bool_))
    free = np.array([vec(64, 64, 3.2), vec(64, 64, 0)])
    share = np.zeros(8, np.int64)
    freed_at_50 = [np.eye(8, dtype=np.int64)[j] * 1000 for j in (2, 5)]
    releases = [
        (50.0, 1, vec(1, 1, 1), freed_at_50[0]),
        (50.0, 1, vec(1, 1, 1), freed_at_50[1]),
        (9e9, 0, vec(1, 1, 0.6), share),
    ]
    res = plan("head", vec(2, 2, 2), 1, free, np.ones(2, np.bool_), releases, 0.0, devices=devices)
    assert res is not None
    assert res.rows.tolist() == [1]
    assert res.start.tolist() == [50.0]
    assert res.hold is not None
    assert res.hold.tolist() == [(1 << 2) | (1 << 5)]
    assert res.device_spare is not None
    assert res.device_spare[0].tolist() == [0] * 8
    # A share that would run past t=50 has no room on node 1 (both freed
    # devices are the head's); one that ends by then may go anywhere.
    assert not res.admits(1, vec(1, 1, 0.5), end=60.0, device_free=free1.tolist())
    assert res.admits(1, vec(1, 1, 0.5), end=50.0, device_free=free1.tolist())


def test_a_share_head_needs_room_on_one_device_and_backfill_keeps_off_it() -> None:
    # Four devices with 0.3 free each now (1.2 in total): a 0.5 share fits
    # none. Device 1 frees its 0.7 share at t=20.
    free_dev = np.array([[300, 300, 300, 300]], np.int64)
    cap = np.full((1, 4), 1000, np.int64)
    devices = DeviceRoom(free_dev, cap, np.ones((1, 4), np.bool_))
    freed = np.array([0, 700, 0, 0], np.int64)
    res = plan(
        "head",
        vec(1, 1, 0.5),
        1,
        np.array([vec(8, 8, 1.2)]),
        np.ones(1, np.bool_),
        [(20.0, 0, vec(1, 1, 0.7), freed)],
        0.0,
        devices=devices,
    )
    assert res is not None
    assert res.start.tolist() == [20.0]
    assert res.hold is not None
    assert res.hold.tolist() == [1 << 1]
    assert res.device_spare is not None
    assert res.device_spare[0].tolist() == [300, 500, 300, 300]
    # A 0.3 share past t=20 fits beside it; a 0.6 one does not.
    assert res.admits(0, vec(1, 1, 0.3), end=99.0)
    assert not res.admits(0, vec(1, 1, 0.6), end=99.0)
    res.commit(0, vec(1, 1, 0.3), end=99.0, masks=[1 << 1])
    assert res.device_spare[0].tolist() == [300, 200, 300, 300]
