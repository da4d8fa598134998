"""The balancer's head reservation plans GPU devices, not a node's GPU total."""

from __future__ import annotations

import numpy as np

from boson_services.balancer.head import HeadBook
from boson_shared.scheduling.devices import DeviceBook
from tests.support.fakes import Clock


def test_the_head_holds_the_devices_that_free_whole_and_backfill_keeps_off_them() -> None:
    clock = Clock()
    book = HeadBook(clock)
    # Node a: four devices with a long 0.4-GPU share each (2.4 GPUs free in
    # total, no whole device). Node b: four whole-GPU tasks; those on
    # devices 0 and 1 are expected to end at t=100.
    a = DeviceBook([1000] * 4, [400] * 4, [""] * 4)
    b = DeviceBook([1000] * 4, [1000] * 4, [""] * 4)
    for k in range(4):
        book.dispatched(f"a{k}", "a", np.array([1.0, 1.0, 0.4]), "long", 10_000.0, 1 << k)
        expected = 100.0 if k < 2 else 10_000.0
        book.dispatched(f"b{k}", "b", np.array([1.0, 1.0, 1.0]), f"b{k}", expected, 1 << k)
    free = np.array([60.0, 60.0, 0.0])
    book.keep_for(
        "head",
        np.array([1.0, 1.0, 2.0]),
        [("a", free + np.array([0.0, 0.0, 2.4]), True, a), ("b", free, True, b)],
        clock.now,
    )
    res = book.reservation
    assert res is not None
    assert res.rows.tolist() == [book.row("b")]
    assert res.start.tolist() == [100.0]
    assert res.hold is not None
    assert res.hold.tolist() == [0b11]
    share = np.array([1.0, 1.0, 0.5])
    # A share expected to run past t=100 may not start on b (devices 0 and 1
    # are the head's, 2 and 3 stay busy); on a it may.
    assert not book.admits("s", "b", share, 200.0, b)
    assert book.admits("s", "a", share, 200.0, a)
    limit = book.device_limit("s", "b", 200.0)
    assert limit == [0, 0, 0, 0]
    b.held[0] = 0  # device 0 frees early: still held for the head
    assert b.take(500, None, 0, limit) == -1
    assert book.device_limit("s", "b", 50.0) is None  # ends before the head needs b
