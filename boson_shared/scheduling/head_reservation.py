"""No starvation: a reservation for the head of the waiting order, and EASY backfill.

Without it, freed capacity goes to whatever fits it now, so a stream of small
tasks keeps a large waiting task (a whole node's GPUs) from ever finding its
room. Here, as in the EASY backfill of batch schedulers (Lifka, "The ANL/IBM
SP scheduling system", 1995), the task at the head of the waiting order that
does not fit now gets a :class:`HeadReservation`:

* **where and when** — for each of its waiting instances (at most one per
  node), the node expected to have room for it soonest, and that time
  (``start``). Expected times come from the work running on each node and
  when it is expected to end: known durations in the simulator; live, the
  handler's recent run times, or its ``timeout_s`` when there are none
  (:class:`RunTimes`). Work whose expected end has passed is expected to end
  now. Allocation whose end nobody knows never frees within the plan.
* **backfill** — any other task may start on a reserved node only if it does
  not delay the reservation: it is expected to end by the node's ``start``,
  or it fits in what the node will have *beyond* the head's demand at
  ``start`` (``spare``; each such task uses some of it up). Nodes not
  reserved take anything that fits.
* **lapse** — a plan rests on estimates. A reservation lapses
  :data:`RESERVATION_LAPSE_S` seconds after it was made (or when a reserved
  node leaves), and the head, still first in line, gets a fresh one from the
  estimates of that moment: a wrong estimate holds capacity idle for a
  bounded time, never for good. With exact durations (the simulator) a
  remade plan starts no later than the one it replaces.

Pure numpy, no I/O and no clock: the caller passes ``now`` and the release
schedule. The balancer (``boson_services/balancer/dispatcher.py``) and the
simulator (``boson/simulation/engine.py``) both use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from boson_shared.scheduling.table import FIT_EPSILON, FloatArray

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

RESERVATION_LAPSE_S: Final = 600.0
"""How long a head reservation holds before it is remade from fresh estimates."""

RUN_TIME_RISE: Final = 0.5
"""Weight of a longer run time in a handler's running mean: estimates grow fast."""
RUN_TIME_DECAY: Final = 0.1
"""Weight of a shorter one: estimates shrink slowly (a reservation errs late, not early)."""


@dataclass
class HeadReservation:
    """Nodes held for the head of the waiting order, and the rule for backfilling them.

    ``rows`` are the reserved nodes' row indices, ``start[i]`` the time the
    head's instance is expected to fit on ``rows[i]``, and ``spare[i]`` what
    that node is expected to have free at ``start[i]`` beyond the head's
    demand — the room a backfilled task that runs past ``start[i]`` may use.
    """

    key: object
    """Which waiting entry holds it (the caller's identity of the head)."""
    demand: FloatArray
    rows: IntArray
    start: FloatArray
    spare: FloatArray
    made_at: float
    lapses_at: float

    @property
    def promised_start(self) -> float:
        """When every reserved instance is expected to have its room."""
        return float(self.start.max()) if self.start.size else self.made_at

    def lapsed(self, now: float) -> bool:
        return now >= self.lapses_at

    def slot(self, row: int) -> int:
        """The position of ``row`` among the reserved nodes; -1 when not reserved."""
        hit = np.flatnonzero(self.rows == row)
        return int(hit[0]) if hit.size else -1

    def room(self, row: int, end: float) -> FloatArray | None:
        """The most a task expected to end at ``end`` may take on ``row`` now.

        ``None``: no limit from the reservation (the node is not reserved, or
        the task ends by the time the head needs the node). Otherwise the
        task must also fit in this, on every resource.
        """
        i = self.slot(row)
        if i < 0 or end <= self.start[i]:
            return None
        out: FloatArray = self.spare[i]
        return out

    def admits(self, row: int, demand: FloatArray, end: float) -> bool:
        """Whether a task of ``demand`` ending at ``end`` may start on ``row`` now."""
        limit = self.room(row, end)
        return limit is None or bool(np.all(demand <= limit + FIT_EPSILON))

    def commit(self, row: int, demand: FloatArray, end: float, count: int = 1) -> None:
        """``count`` backfilled tasks of ``demand`` started on ``row``: use up what they take."""
        i = self.slot(row)
        if i >= 0 and end > self.start[i]:
            self.spare[i] = np.maximum(self.spare[i] - demand * count, 0.0)

    def end_now(self) -> None:
        """Lapse at once (a reserved node left): the caller remakes the plan."""
        self.lapses_at = -np.inf


Release = tuple[float, int, FloatArray]
"""Running work's expected end, its node's row, and what it frees there."""


def plan_reservation(
    key: object,
    demand: FloatArray,
    count: int,
    free: FloatArray,
    alive: BoolArray,
    releases: Iterable[Release],
    now: float,
    lapse_s: float = RESERVATION_LAPSE_S,
) -> HeadReservation | None:
    """Reserve, for ``count`` waiting instances of ``demand``, the nodes that free soonest.

    ``free`` (n, 3) is each node's free capacity now and ``alive`` the nodes
    that may take work. ``releases`` is the running work, in order of
    expected end (an end in the past counts as now); it is read only as far
    as needed, so a caller may produce it lazily. Each node gets at most one
    of the instances; ties go to the lower row. ``None`` when no node is
    expected ever to have room (the caller counts such work as never
    placeable, or lets it wait unreserved).
    """
    if count <= 0:
        return None
    need = demand - FIT_EPSILON
    room = np.array(free, dtype=np.float64)
    rows: list[int] = np.flatnonzero(alive & np.all(room >= need, axis=1))[:count].tolist()
    starts = [now] * len(rows)
    spares = [room[r] - demand for r in rows]
    if len(rows) < count:
        taken = set(rows)
        touched: set[int] = set()
        when: float | None = None

        def settle(at: float) -> None:
            # Every release at one instant counts before a node is judged.
            for r in sorted(touched):
                if len(rows) < count and r not in taken and alive[r] and np.all(room[r] >= need):
                    taken.add(r)
                    rows.append(r)
                    starts.append(max(at, now))
                    spares.append(room[r] - demand)
            touched.clear()

        for end, row, amount in releases:
            if when is not None and end != when:
                settle(when)
                if len(rows) >= count:
                    break
            when = end
            room[row] += amount
            touched.add(row)
        else:
            if when is not None:
                settle(when)
    if not rows:
        return None
    return HeadReservation(
        key=key,
        demand=np.asarray(demand, np.float64).copy(),
        rows=np.asarray(rows, np.int64),
        start=np.asarray(starts, np.float64),
        spare=np.maximum(np.asarray(spares, np.float64).reshape(-1, free.shape[1]), 0.0),
        made_at=now,
        lapses_at=now + lapse_s,
    )


def sorted_releases(rows: IntArray, ends: FloatArray, amounts: FloatArray) -> Iterator[Release]:
    """Releases given as arrays, in the order :func:`plan_reservation` reads them."""
    order = np.lexsort((rows, ends))
    for k in order.tolist():
        yield float(ends[k]), int(rows[k]), amounts[k]


class RunTimes:
    """Expected run time per handler: a running mean of reported run times.

    Before a handler has reported any, a task's own ``timeout_s`` stands in
    (the longest it may run), and ``default_s`` without one. The mean follows
    longer run times fast and shorter ones slowly, so a reservation promised
    from it errs late rather than early.
    """

    def __init__(self, default_s: float = RESERVATION_LAPSE_S) -> None:
        self.default_s = default_s
        self._mean: dict[str, float] = {}

    def observe(self, handler: str, seconds: float) -> None:
        if not seconds >= 0:
            return
        mean = self._mean.get(handler)
        if mean is None:
            self._mean[handler] = seconds
        else:
            weight = RUN_TIME_RISE if seconds > mean else RUN_TIME_DECAY
            self._mean[handler] = mean + weight * (seconds - mean)

    def expected(self, handler: str | None, timeout_s: float | None) -> float:
        """How long a task of ``handler`` is expected to run."""
        if handler is not None and handler in self._mean:
            mean = self._mean[handler]
            # Never past its own limit: it is stopped there.
            return min(mean, timeout_s) if timeout_s else mean
        return timeout_s if timeout_s else self.default_s


__all__ = [
    "RESERVATION_LAPSE_S",
    "RUN_TIME_DECAY",
    "RUN_TIME_RISE",
    "HeadReservation",
    "Release",
    "RunTimes",
    "plan_reservation",
    "sorted_releases",
]
