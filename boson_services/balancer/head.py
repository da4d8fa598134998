"""The balancer's side of the head reservation: expected ends, the plan, the backfill check.

The rule itself is :mod:`boson_shared.scheduling.head_reservation` (the
simulator uses it too); this keeps what the live balancer knows to feed it:
each dispatched task's expected end — when it was dispatched plus its
handler's recent run time, or its ``timeout_s`` before the handler has
reported one — and a stable row per node. See docs/design.md#no-starvation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from boson_shared.scheduling.head_reservation import (
    RESERVATION_LAPSE_S,
    HeadReservation,
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
        self._running: dict[str, tuple[str | None, float, int, np.ndarray]] = {}
        """Task id → (handler, expected end, node row, demand) of dispatched work."""
        self._row_of: dict[str, int] = {}
        """Node id → its row in the plan's arrays (rows never change)."""

    def row(self, node_id: str) -> int:
        """The node's row, given on first sight."""
        return self._row_of.setdefault(node_id, len(self._row_of))

    def expected_s(self, handler: str | None, timeout_s: float | None) -> float:
        return self.run_times.expected(handler, timeout_s)

    def admits(self, task_id: str, node_id: str, demand: np.ndarray, expected_s: float) -> bool:
        """Whether the task may start on the node now without delaying the reservation."""
        res = self.reservation
        if res is None or res.key == task_id:
            return True
        return res.admits(self.row(node_id), demand, self.clock() + expected_s)

    def dispatched(
        self,
        task_id: str,
        node_id: str,
        demand: np.ndarray,
        handler: str | None,
        expected_s: float,
    ) -> None:
        """The task went to the node: the head's reservation is spent, or backfill uses it."""
        end = self.clock() + expected_s
        row = self.row(node_id)
        res = self.reservation
        if res is not None:
            if res.key == task_id:
                self.reservation = None
            else:
                res.commit(row, demand, end)
        self._running[task_id] = (handler, end, row, demand)

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
        nodes: Sequence[tuple[str, np.ndarray, bool]],
        now: float,
    ) -> None:
        """Keep the reservation on the head ``task_id`` (``None``: nothing waits).

        Made when the head changes, remade when it lapses. ``nodes``: each
        node's id, free capacity and whether it takes work.
        """
        res = self.reservation
        if task_id is None:
            self.reservation = None
            return
        if res is not None and res.key == task_id and not res.lapsed(now):
            return
        rows = [self.row(node_id) for node_id, _, _ in nodes]
        free = np.zeros((len(self._row_of), 3))
        alive = np.zeros(len(self._row_of), dtype=np.bool_)
        for row, (_, room, ok) in zip(rows, nodes, strict=True):
            free[row] = np.maximum(room, 0.0)
            alive[row] = ok
        releases = sorted(
            ((end, row, amount) for _, end, row, amount in self._running.values()),
            key=lambda release: (release[0], release[1]),
        )
        self.reservation = plan_reservation(
            task_id, demand, 1, free, alive, releases, now, self.lapse_s
        )
        if self.reservation is not None:
            self.reserved_total += 1


__all__ = ["HeadBook"]
