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
* **devices** — with GPU devices (:class:`DeviceRoom`), a node has room for
  the head when its devices hold the head's GPU part by the device rule
  (:mod:`~boson_shared.scheduling.devices`): a whole-GPU head needs that
  many devices entirely free, a share needs room on one device. The plan
  follows each release onto the devices it frees and holds, per reserved
  node, the specific devices the choice rule gives the head at ``start``
  (``hold``), so a node whose GPU total would do but whose devices would not
  is never promised.
* **backfill** — any other task may start on a reserved node only if it does
  not delay the reservation: it is expected to end by the node's ``start``,
  or it fits in what the node will have *beyond* the head's demand at
  ``start`` (``spare``, and per device ``device_spare``: the held devices
  keep nothing for others beyond what the head leaves on them; each such
  task uses some of it up). Nodes not reserved take anything that fits.
* **lapse** — a plan rests on estimates. A reservation lapses
  :data:`RESERVATION_LAPSE_S` seconds after it was made (or when a reserved
  node leaves), and the head, still first in line, gets a fresh one from the
  estimates of that moment: a wrong estimate holds capacity idle for a
  bounded time, never for good. With exact durations (the simulator) a
  remade plan starts no later than the one it replaces.

Pure numpy, no I/O and no clock: the caller passes ``now`` and the release
schedule. The balancer (``boson_services/balancer/head.py``) and the
simulator (``boson/simulation/reserving.py``) both use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.devices import MILLI
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
    hold: IntArray | None = None
    """Per reserved node, the GPU devices held for the head (a bit mask; ``None``: no devices)."""
    device_cap: IntArray | None = None
    """Per reserved node, each device's capacity in milli-units ``(k, G)`` (0: no device)."""
    device_spare: IntArray | None = None
    """Per reserved node, each device's room at ``start`` beyond the head's hold ``(k, G)``."""

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

    def device_room(self, row: int, end: float) -> IntArray | None:
        """Per device, the most a task expected to end at ``end`` may take on ``row`` now.

        ``None``: no limit (as :meth:`room`), or the plan has no devices.
        """
        i = self.slot(row)
        if i < 0 or end <= self.start[i] or self.device_spare is None:
            return None
        out: IntArray = self.device_spare[i]
        return out

    def admits(
        self,
        row: int,
        demand: FloatArray,
        end: float,
        device_free: Sequence[int] | None = None,
    ) -> bool:
        """Whether a task of ``demand`` ending at ``end`` may start on ``row`` now.

        ``device_free``: the node's free milli-units per device now; with
        devices in the plan the GPU part must fit, by the device rule, in
        the lesser of that and the reservation's per-device spare.
        """
        limit = self.room(row, end)
        if limit is None:
            return True
        i = self.slot(row)
        if self.device_spare is None or self.device_cap is None:
            return bool(np.all(demand <= limit + FIT_EPSILON))
        if not bool(np.all(demand[:2] <= limit[:2] + FIT_EPSILON)):
            return False
        spare = self.device_spare[i]
        if device_free is not None:
            now = np.zeros_like(spare)
            width = min(len(device_free), spare.shape[0])
            now[:width] = np.asarray(device_free, np.int64)[:width]
            spare = np.minimum(spare, now)
        cap = self.device_cap[i]
        return _dev.fits(spare.tolist(), cap.tolist(), (cap > 0).tolist(), _dev.to_milli(demand[2]))

    def commit(
        self,
        row: int,
        demand: FloatArray,
        end: float,
        count: int = 1,
        masks: Sequence[int] | None = None,
    ) -> None:
        """``count`` backfilled tasks of ``demand`` started on ``row``: use up what they take.

        ``masks``: each one's GPU devices (else the device choice rule on the spare).
        """
        i = self.slot(row)
        if i < 0 or end <= self.start[i]:
            return
        self.spare[i] = np.maximum(self.spare[i] - demand * count, 0.0)
        if self.device_spare is None or self.device_cap is None:
            return
        milli = _dev.to_milli(demand[2])
        if milli == 0:
            return
        _, per = _dev.shape(milli)
        spare = self.device_spare[i]
        cap = self.device_cap[i].tolist()
        for k in range(count):
            mask = masks[k] if masks is not None and k < len(masks) else -1
            if mask < 0:
                mask = _dev.pick(spare.tolist(), cap, [c > 0 for c in cap], milli)
            for j in _dev.indices_of(max(mask, 0)):
                if j < spare.shape[0]:
                    spare[j] = max(0, int(spare[j]) - per)
        self.spare[i, 2] = float(spare.sum()) / MILLI

    def end_now(self) -> None:
        """Lapse at once (a reserved node left): the caller remakes the plan."""
        self.lapses_at = -np.inf


Release = tuple[float, int, FloatArray, "IntArray | None"]
"""Running work's expected end, its node's row, what it frees there, and the
milli-units it frees on each of that node's devices (``None``: no devices)."""


@dataclass(frozen=True)
class DeviceRoom:
    """The nodes' GPU devices for a plan: free now, capacity, and which may serve the head.

    All ``(n, G)`` in milli-units; a node with fewer devices has capacity 0 past its last.
    """

    free: IntArray
    cap: IntArray
    ok: BoolArray


def plan_reservation(
    key: object,
    demand: FloatArray,
    count: int,
    free: FloatArray,
    alive: BoolArray,
    releases: Iterable[Release],
    now: float,
    lapse_s: float = RESERVATION_LAPSE_S,
    devices: DeviceRoom | None = None,
) -> HeadReservation | None:
    """Reserve, for ``count`` waiting instances of ``demand``, the nodes that free soonest.

    ``free`` (n, 3) is each node's free capacity now and ``alive`` the nodes
    that may take work. ``releases`` is the running work, in order of
    expected end (an end in the past counts as now); it is read only as far
    as needed, so a caller may produce it lazily. Each node gets at most one
    of the instances; ties go to the lower row. ``None`` when no node is
    expected ever to have room (the caller counts such work as never
    placeable, or lets it wait unreserved). With ``devices`` the head's GPU
    part is judged and held per device (module docstring).
    """
    if count <= 0:
        return None
    need = demand - FIT_EPSILON
    room = np.array(free, dtype=np.float64)
    milli = _dev.to_milli(demand[2]) if devices is not None else 0
    per = _dev.shape(milli)[1]
    dev_room = None if devices is None else np.array(devices.free, dtype=np.int64)
    if dev_room is not None:
        need[2] = -np.inf  # the devices decide the GPU part

    def has_room(r: int) -> bool:
        if not (alive[r] and np.all(room[r] >= need)):
            return False
        if dev_room is None or devices is None or milli == 0:
            return True
        return _dev.fits(
            dev_room[r].tolist(), devices.cap[r].tolist(), devices.ok[r].tolist(), milli
        )

    rows: list[int] = []
    starts: list[float] = []
    spares: list[FloatArray] = []
    holds: list[int] = []
    dev_spares: list[IntArray] = []

    def take(r: int, at: float) -> None:
        rows.append(r)
        starts.append(max(at, now))
        spare = room[r] - demand
        if dev_room is not None and devices is not None:
            left = dev_room[r].copy()
            mask = 0
            if milli:
                mask = _dev.pick(
                    left.tolist(), devices.cap[r].tolist(), devices.ok[r].tolist(), milli
                )
                for j in _dev.indices_of(mask):
                    left[j] -= per
            holds.append(mask)
            dev_spares.append(left)
            spare[2] = float(left.sum()) / MILLI
        spares.append(spare)

    for r in np.flatnonzero(alive & np.all(room >= need, axis=1)).tolist():
        if len(rows) >= count:
            break
        if has_room(r):
            take(r, now)
    if len(rows) < count:
        taken = set(rows)
        touched: set[int] = set()
        when: float | None = None

        def settle(at: float) -> None:
            # Every release at one instant counts before a node is judged.
            for r in sorted(touched):
                if len(rows) < count and r not in taken and has_room(r):
                    taken.add(r)
                    take(r, at)
            touched.clear()

        for end, row, amount, freed in releases:
            if when is not None and end != when:
                settle(when)
                if len(rows) >= count:
                    break
            when = end
            room[row] += amount
            if dev_room is not None and freed is not None:
                width = min(freed.shape[0], dev_room.shape[1])
                dev_room[row, :width] += freed[:width]
            touched.add(row)
        else:
            if when is not None:
                settle(when)
    if not rows:
        return None
    device_fields: dict[str, IntArray] = {}
    if devices is not None:
        device_fields = {
            "hold": np.asarray(holds, np.int64),
            "device_cap": np.asarray(devices.cap[rows], np.int64),
            "device_spare": np.maximum(np.asarray(dev_spares, np.int64), 0),
        }
    return HeadReservation(
        key=key,
        demand=np.asarray(demand, np.float64).copy(),
        rows=np.asarray(rows, np.int64),
        start=np.asarray(starts, np.float64),
        spare=np.maximum(np.asarray(spares, np.float64).reshape(-1, free.shape[1]), 0.0),
        made_at=now,
        lapses_at=now + lapse_s,
        **device_fields,
    )


def sorted_releases(
    rows: IntArray,
    ends: FloatArray,
    amounts: FloatArray,
    device_amounts: IntArray | None = None,
) -> Iterator[Release]:
    """Releases given as arrays, in the order :func:`plan_reservation` reads them."""
    order = np.lexsort((rows, ends))
    for k in order.tolist():
        freed = None if device_amounts is None else device_amounts[k]
        yield float(ends[k]), int(rows[k]), amounts[k], freed


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
    "DeviceRoom",
    "HeadReservation",
    "Release",
    "RunTimes",
    "plan_reservation",
    "sorted_releases",
]
