"""The balancer's side of the head reservation: expected ends, the plan, the backfill check.

The rule itself is :mod:`boson_shared.scheduling.head_reservation` (the
simulator uses it too); this keeps what the live balancer knows to feed it:
each dispatched task's expected end — when it was dispatched plus its
handler's recent run time, or its ``timeout_s`` before the handler has
reported one — and a stable row per node. With GPU devices, each dispatched
task's devices too, so the plan holds specific devices for the head and a
backfill's device choice keeps off them. See docs/design.md#no-starvation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.devices import DeviceBook
from boson_shared.scheduling.head_reservation import (
    RESERVATION_LAPSE_S,
    DeviceRoom,
    HeadReservation,
    Release,
    RunTimes,
    plan_reservation,
)


class HeadBook:
    """The current head reservation and the run-time estimates behind it."""

    def __init__(self, clock: Callable[[], float], lapse_s: float = RESERVATION_LAPSE_S) -> None:
        self.clock = clock
        self.lapse_s = lapse_s
        self.run_times = RunTimes()
        """Expected run time per handler, from the run times results report."""
        self.reservation: HeadReservation | None = None
        """The head of the waiting order's reservation (its ``key`` is the task id)."""
        self.reserved_total = 0
        """Head reservations made (a remade one counts again)."""
        self._running: dict[str, tuple[str | None, float, int, np.ndarray, int]] = {}
        """Task id → (handler, expected end, node row, demand, GPU devices) of dispatched work."""
        self._row_of: dict[str, int] = {}
        """Node id → its row in the plan's arrays (rows never change)."""

    def row(self, node_id: str) -> int:
        """The node's row, given on first sight."""
        return self._row_of.setdefault(node_id, len(self._row_of))

    def expected_s(self, handler: str | None, timeout_s: float | None) -> float:
        return self.run_times.expected(handler, timeout_s)

    def admits(
        self,
        task_id: str,
        node_id: str,
        demand: np.ndarray,
        expected_s: float,
        gpus: DeviceBook | None = None,
    ) -> bool:
        """Whether the task may start on the node now without delaying the reservation.

        ``gpus``: the node's devices now (their free room bounds the GPU check).
        """
        res = self.reservation
        if res is None or res.key == task_id:
            return True
        free = None if gpus is None else [c - h for c, h in zip(gpus.cap, gpus.held, strict=True)]
        return res.admits(self.row(node_id), demand, self.clock() + expected_s, free)

    def device_limit(self, task_id: str, node_id: str, expected_s: float) -> list[int] | None:
        """The most the task may take per device on the node (``None``: no limit)."""
        res = self.reservation
        if res is None or res.key == task_id:
            return None
        room = res.device_room(self.row(node_id), self.clock() + expected_s)
        return None if room is None else [int(v) for v in room]

    def dispatched(
        self,
        task_id: str,
        node_id: str,
        demand: np.ndarray,
        handler: str | None,
        expected_s: float,
        mask: int = 0,
    ) -> None:
        """The task went to the node (on GPU devices ``mask``): the head's reservation is
        spent, or backfill uses it."""
        end = self.clock() + expected_s
        row = self.row(node_id)
        res = self.reservation
        if res is not None:
            if res.key == task_id:
                self.reservation = None
            else:
                res.commit(row, demand, end, 1, [mask] if mask > 0 else None)
        self._running[task_id] = (handler, end, row, demand, max(mask, 0))

    def finished(self, task_id: str, wall_s: float | None) -> None:
        """Its result came back (``wall_s``: the run time it reports)."""
        entry = self._running.pop(task_id, None)
        if entry is not None and entry[0] is not None and wall_s is not None:
            self.run_times.observe(entry[0], wall_s)

    def forget(self, task_id: str) -> None:
        """Its node died: it frees nothing there any more."""
        self._running.pop(task_id, None)

    def released(self, task_id: str) -> None:
        """No longer held (cancelled): a reservation it held goes."""
        if self.reservation is not None and self.reservation.key == task_id:
            self.reservation = None

    def check_nodes(self, takes_work: Mapping[str, bool]) -> None:
        """A reserved node that takes no work any more ends the reservation (remade next pump)."""
        res = self.reservation
        if res is not None and any(
            not ok for node_id, ok in takes_work.items() if res.slot(self.row(node_id)) >= 0
        ):
            res.end_now()

    def keep_for(
        self,
        task_id: str | None,
        demand: np.ndarray,
        nodes: Sequence[tuple[str, np.ndarray, bool, DeviceBook | None]],
        now: float,
    ) -> None:
        """Keep the reservation on the head ``task_id`` (``None``: nothing waits).

        Made when the head changes, remade when it lapses. ``nodes``: each
        node's id, free capacity, whether it takes work, and its GPU devices.
        """
        res = self.reservation
        if task_id is None:
            self.reservation = None
            return
        if res is not None and res.key == task_id and not res.lapsed(now):
            return
        rows = [self.row(node_id) for node_id, _, _, _ in nodes]
        free = np.zeros((len(self._row_of), 3))
        alive = np.zeros(len(self._row_of), dtype=np.bool_)
        for row, (_, room, ok, _) in zip(rows, nodes, strict=True):
            free[row] = np.maximum(room, 0.0)
            alive[row] = ok
        devices = self._device_room(rows, [gpus for _, _, _, gpus in nodes])
        width = 0 if devices is None else devices.cap.shape[1]
        releases: list[Release] = []
        for _, end, row, amount, mask in self._running.values():
            freed = None
            if devices is not None and mask:
                _, per = _dev.shape(_dev.to_milli(amount[2]))
                freed = np.zeros(width, np.int64)
                for j in _dev.indices_of(mask):
                    if j < width:
                        freed[j] = per
            releases.append((end, row, amount, freed))
        releases.sort(key=lambda release: (release[0], release[1]))
        self.reservation = plan_reservation(
            task_id, demand, 1, free, alive, releases, now, self.lapse_s, devices
        )
        if self.reservation is not None:
            self.reserved_total += 1

    def _device_room(
        self, rows: Sequence[int], books: Sequence[DeviceBook | None]
    ) -> DeviceRoom | None:
        """The nodes' devices as the planner reads them (``None``: no node has any)."""
        width = max((len(b.cap) for b in books if b is not None), default=0)
        if width == 0:
            return None
        n = len(self._row_of)
        cap = np.zeros((n, width), np.int64)
        held = np.zeros((n, width), np.int64)
        for row, book in zip(rows, books, strict=True):
            if book is not None and book.cap:
                g = len(book.cap)
                cap[row, :g] = book.cap
                held[row, :g] = book.held
        return DeviceRoom(np.maximum(cap - held, 0), cap, cap > 0)


__all__ = ["HeadBook"]
