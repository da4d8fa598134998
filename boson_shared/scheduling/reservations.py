"""Optimistic reservations: capacity a scheduler has promised but no snapshot shows yet.

Between two ``ClusterSnapshot``s the scheduler places many tasks; without
memory of them, every task of a burst would land on the node that looked
best in the last snapshot. The scheduler therefore reserves each placement
here, and when a snapshot arrives it *rebases*: the table takes the
snapshot's allocations and the live reservations are laid on top.

A reservation ends when the scheduler learns the node holds the task
(``confirm``, e.g. on ``TaskAssigned`` or a result), when the task is
cancelled (``cancel``), or when it expires — long enough for the task to
appear in a snapshot, short enough that a lost task does not hold capacity
for ever. The clock is injected, so tests and the simulator drive time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from boson_shared.scheduling.table import FloatArray, NodeTable, as_vector


@dataclass(frozen=True, slots=True)
class Reservation:
    """Capacity held for one task on one node until ``expires_at``."""

    task_id: str
    node_id: str
    demand: FloatArray
    made_at: float
    expires_at: float
    devices: int = 0
    """The GPU devices held, a bit mask (0: none)."""


class ReservationBook:
    """Live reservations keyed by task id, with expiry on an injected clock."""

    def __init__(self, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise ValueError("a reservation's time to live must be positive")
        self.ttl_s = ttl_s
        self._clock = clock
        self._held: dict[str, Reservation] = {}

    def reserve(
        self,
        task_id: str,
        node_id: str,
        demand: ArrayLike,
        ttl_s: float | None = None,
        devices: int = 0,
    ) -> Reservation:
        """Hold ``demand`` on ``node_id`` (its GPU part on ``devices``) for ``task_id``."""
        now = self._clock()
        res = Reservation(
            task_id, node_id, as_vector(demand), now, now + (ttl_s or self.ttl_s), devices
        )
        self._held[task_id] = res
        return res

    def confirm(self, task_id: str) -> Reservation | None:
        """The node now reports the task itself: drop the hold (no table change)."""
        return self._held.pop(task_id, None)

    def cancel(self, task_id: str, table: NodeTable | None = None) -> Reservation | None:
        """The task will not run there: drop the hold and, given ``table``, free it there."""
        res = self._held.pop(task_id, None)
        if res is not None and table is not None and res.node_id in table:
            table.release(table.index_of(res.node_id), res.demand, res.devices or None)
        return res

    def expire(self, table: NodeTable | None = None) -> list[Reservation]:
        """Drop holds past their expiry (freeing them in ``table`` if given); returns them."""
        now = self._clock()
        gone = [r for r in self._held.values() if r.expires_at <= now]
        for res in gone:
            del self._held[res.task_id]
            if table is not None and res.node_id in table:
                table.release(table.index_of(res.node_id), res.demand, res.devices or None)
        return gone

    def held(self) -> dict[str, FloatArray]:
        """Total live reserved demand per node id."""
        out: dict[str, FloatArray] = {}
        for res in self._held.values():
            out[res.node_id] = out.get(res.node_id, np.zeros_like(res.demand)) + res.demand
        return out

    def rebase(
        self,
        table: NodeTable,
        allocations: Mapping[str, ArrayLike],
        devices: Mapping[str, list[int]] | None = None,
    ) -> None:
        """Take a snapshot's allocations, then lay every live reservation on top.

        ``devices``: per node, the snapshot's GPU allocation per device.
        Expired holds are dropped first; holds on nodes the table does not
        know are kept (the node may join in the next snapshot). A hold's GPU
        part goes back on its own devices; where the snapshot already counts
        the task there, the device is full and the hold adds nothing more.
        """
        self.expire()
        for node_id, allocated in allocations.items():
            per_device = None if devices is None else devices.get(node_id)
            table.set_allocated(node_id, allocated, per_device)
        for res in self._held.values():
            if res.node_id not in table:
                continue
            i = table.index_of(res.node_id)
            if res.devices:
                table.allocate(i, res.demand, res.devices, saturate=True)
            else:
                table.allocate(i, res.demand)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._held

    def __len__(self) -> int:
        return len(self._held)


__all__ = ["Reservation", "ReservationBook"]
