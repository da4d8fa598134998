"""Choosing the running work a claim on lent quota preempts.

Two choosers, one rule — only work of tenants above their guarantee on a
resource the claim needs, and of each only while it stays above:

* :func:`choose_victims` knows the pool's total alone: youngest first until
  the amount the claim needs is freed.
* :func:`choose_victims_on_nodes` knows where each instance runs and what
  each node has free (a :class:`NodeRoom` from the caller): it frees room
  node by node in pieces the claimant's waiting instances fit, and stops
  nothing on a node where that room would not take one of them. Freed room
  the claimant cannot use would go straight back to the borrowers whose
  instances do fit it, and the claim would stand as before. When the
  caller knows the nodes' GPU devices (a :class:`DeviceRoom`), GPU room is
  per device, by the device rule (a share of one device, or whole ones),
  and only on devices of the models the claimant's task allows
  (``gpu_model``): room freed on other devices is no room for it, and a
  node with no device that could ever take it is passed over.

Among borrowers, work of the tenant furthest above its fair share (the
largest weighted dominant share) goes first, youngest first within it; so
preemption takes back from whoever borrows most, as DRF orders admission.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator, Reversible, Sequence
from typing import Protocol, runtime_checkable

from boson_shared.scheduling.admission_state import (
    EPSILON,
    Running,
    TenantState,
    Victim,
    Waiting,
    dominant,
)
from boson_shared.scheduling.devices import (
    fits,
    indices_of,
    model_matches,
    pick,
    shape,
    to_milli,
)

Slot = tuple[tuple[float, ...], int, frozenset[str] | None]
"""Waiting instances of the claimant: (demand, instances, GPU models allowed)."""

Devices = tuple[list[int], list[int], list[str]]
"""One node's GPU devices: milli free, milli capacity and model of each."""


class NodeRoom(Protocol):
    """What the caller knows of the nodes, for :meth:`Admission.reclaim`."""

    def free(self, node: Hashable) -> Sequence[float]:
        """What ``node`` has free now (nothing, for a node that takes no work)."""
        ...

    def nodes(self, run: Running) -> Sequence[Hashable]:
        """The node of each running instance of ``run``, one entry per instance."""
        ...


@runtime_checkable
class DeviceRoom(NodeRoom, Protocol):
    """A :class:`NodeRoom` that also knows each node's GPU devices: a
    claimant's GPU request then fits a node only as the device rule has it
    (a share of one device, or whole devices) on devices of a model it
    allows, not by the node's GPU total."""

    def devices(self, node: Hashable) -> Devices | None:
        """(milli free, milli capacity, model) of each GPU device of ``node``
        (None: not a node of devices; its GPU room is its total, as without).
        A model is matched as placement matches it
        (:func:`~boson_shared.scheduling.devices.model_matches`)."""
        ...

    def devices_held(self, run: Running, position: int) -> int:
        """The devices (a mask) instance ``position`` of ``run`` holds on its node."""
        ...


def _borrowers(
    running: Reversible[Running],
    tenants: Sequence[TenantState],
    claimant: int,
    pool: Sequence[float],
) -> Iterator[Running]:
    """Candidate runs: the tenant furthest above its fair share first, youngest first."""
    over = [
        k
        for k, t in enumerate(tenants)
        if k != claimant and any(u > g + EPSILON for u, g in zip(t.usage, t.guarantee, strict=True))
    ]
    over.sort(key=lambda k: -dominant(tenants[k].usage, pool) / tenants[k].weight)
    for k in over:
        for run in reversed(running):
            if run.tenant == k and run.count > 0:
                yield run


def choose_victims(
    running: Reversible[Running],
    tenants: Sequence[TenantState],
    claimant: int,
    need: list[float],
    pool: Sequence[float] = (),
) -> list[Victim]:
    """Running work to stop so that ``need`` is freed for tenant ``claimant``.

    Only work of tenants above their guarantee on a resource the claim still
    needs, and of each only while it stays above; an empty list if that
    cannot cover the need.
    """
    left = list(need)
    over = [[u - g for u, g in zip(t.usage, t.guarantee, strict=True)] for t in tenants]
    chosen: list[Victim] = []
    for run in _borrowers(running, tenants, claimant, pool or (1.0,) * len(need)):
        excess = over[run.tenant]
        # Stop its instances one by one while its tenant still borrows a
        # resource the claim needs; the instance that takes the tenant
        # down to its guarantee is the last one.
        taken = 0
        while taken < run.count and any(
            left[r] > EPSILON and d > 0 and excess[r] > EPSILON for r, d in enumerate(run.demand)
        ):
            taken += 1
            for r, d in enumerate(run.demand):
                excess[r] -= d
                left[r] -= d
        if taken:
            chosen.append(Victim(run, taken))
        if all(x <= EPSILON for x in left):
            return chosen
    return []


def claim_slots(line: Iterable[Waiting], room: Sequence[float], limit: int) -> list[Slot]:
    """The claimant's waiting instances its ``room`` (guarantee − usage) covers,
    in line order: (demand, instances, models), at most ``limit`` entries."""
    left = list(room)
    slots: list[Slot] = []
    for w in line:
        if len(slots) >= limit:
            break
        if w.count <= 0:
            continue
        n = w.count
        for r, d in enumerate(w.demand):
            if d > 0 and left[r] != math.inf:  # an ungoverned resource limits nothing
                n = min(n, int((left[r] + EPSILON) // d))
        if n <= 0:
            break
        slots.append((w.demand, n, w.models))
        for r, d in enumerate(w.demand):
            left[r] -= d * n
        if n < w.count:
            break
    return slots


def choose_victims_on_nodes(
    running: Reversible[Running],
    tenants: Sequence[TenantState],
    claimant: int,
    slots: list[Slot],
    room: NodeRoom,
    base: dict[Hashable, list[float]],
    taken: dict[int, set[int]],
    pool: Sequence[float],
    device_base: dict[Hashable, Devices] | None = None,
) -> list[Victim]:
    """Running work to stop, node by node, so the claimant's ``slots`` fit.

    Walks the candidates (:func:`_borrowers`' order), adding each instance's
    demand to what its node would have free; whenever that room takes the
    claimant's next waiting instance, the instances counted on that node are
    chosen. Instances counted on a node that never takes one are left
    running. ``base`` (node → free room after earlier claims of this call)
    and ``taken`` (id of a run → positions of instances already chosen in
    this call) are
    shared between the claims of one call, and updated; so is
    ``device_base`` (node → its GPU devices) when ``room`` is a
    :class:`DeviceRoom`. There, an instance on a node none of whose devices
    could ever take the claimant's next instance (none of a model it allows,
    say) is not counted at all: stopping it would free nothing the claimant
    can use, and counting it would use up its tenant's excess, which an
    instance on a node that can take the claimant then needs.
    """
    if not slots:
        return []
    slots = list(slots)
    devices = _Devices(room, device_base) if isinstance(room, DeviceRoom) else None
    over = [[u - g for u, g in zip(t.usage, t.guarantee, strict=True)] for t in tenants]
    width = len(pool)
    needs = [any(slot[0][r] > 0 for slot in slots) for r in range(width)]
    pending: dict[Hashable, tuple[list[tuple[Running, int]], list[float]]] = {}
    chosen: dict[int, tuple[Running, list[Hashable]]] = {}
    for run in _borrowers(running, tenants, claimant, pool):
        excess = over[run.tenant]
        where = room.nodes(run)
        gone = taken.setdefault(id(run), set())
        # Instances are looked at from the end of the run's list (the
        # caller stops one on each node named).
        for position in range(len(where) - 1, -1, -1):
            if position in gone:
                continue
            if not any(
                needs[r] and run.demand[r] > 0 and excess[r] > EPSILON for r in range(width)
            ):
                break
            node = where[position]
            if devices is not None and not devices.could_take(node, slots[0][0], slots[0][2]):
                continue
            free = base.get(node)
            if free is None:
                free = base[node] = list(room.free(node))
            counted, extra = pending.setdefault(node, ([], [0.0] * width))
            counted.append((run, position))
            gone.add(position)
            for r, d in enumerate(run.demand):
                excess[r] -= d
                extra[r] += d
            if devices is not None:
                devices.count(node, run, position)
            demand, _, models = slots[0]
            if all(d <= f + x + EPSILON for d, f, x in zip(demand, free, extra, strict=True)) and (
                devices is None or devices.fits(node, demand, models, pending=True)
            ):
                # This node now takes the claimant's next instance (and perhaps more).
                for r in range(width):
                    free[r] += extra[r]
                if devices is not None:
                    devices.settle(node)
                while (
                    slots
                    and all(d <= f + EPSILON for d, f in zip(slots[0][0], free, strict=True))
                    and (devices is None or devices.fits(node, slots[0][0], slots[0][2]))
                ):
                    demand, count, models = slots[0]
                    for r, d in enumerate(demand):
                        free[r] -= d
                    if devices is not None:
                        devices.take(node, demand, models)
                    slots[0] = (demand, count - 1, models)
                    if count == 1:
                        slots.pop(0)
                for victim_run, _ in counted:
                    entry = chosen.setdefault(id(victim_run), (victim_run, []))
                    entry[1].append(node)
                del pending[node]
                if not slots:
                    return _victims(chosen, pending, taken)
    return _victims(chosen, pending, taken)


class _Devices:
    """The GPU devices of the nodes one reclaim looks at (a :class:`DeviceRoom`'s):
    what each has free after earlier claims (shared), and what the instances
    counted on it but not chosen yet would free. A claimant's instance counts
    only devices of a model it allows (``models``; ``None``: any)."""

    def __init__(self, room: DeviceRoom, base: dict[Hashable, Devices] | None) -> None:
        self.room = room
        self.base = {} if base is None else base
        self.extra: dict[Hashable, list[int]] = {}
        self.unknown: set[Hashable] = set()

    def _free(self, node: Hashable) -> Devices | None:
        known = self.base.get(node)
        if known is None:
            if node in self.unknown:
                return None
            got = self.room.devices(node)
            if got is None:
                self.unknown.add(node)
                return None
            known = self.base[node] = (list(got[0]), list(got[1]), list(got[2]))
        return known

    def count(self, node: Hashable, run: Running, position: int) -> None:
        """Instance ``position`` of ``run``, on ``node``, is counted as stopped."""
        known = self._free(node)
        if known is None:
            return
        extra = self.extra.setdefault(node, [0] * len(known[0]))
        _, per = shape(to_milli(run.demand[2]))
        for j in indices_of(self.room.devices_held(run, position) if per else 0):
            if j < len(extra):
                extra[j] += per

    def could_take(
        self, node: Hashable, demand: Sequence[float], models: frozenset[str] | None
    ) -> bool:
        """Whether ``demand``'s GPU part would fit the node's devices were they
        all free (none of a model it allows, or too small: never)."""
        milli = to_milli(demand[2])
        known = self._free(node)
        if milli <= 0 or known is None:
            return True
        _, cap, kinds = known
        return fits(cap, cap, _qualifying(kinds, models), milli)

    def fits(
        self,
        node: Hashable,
        demand: Sequence[float],
        models: frozenset[str] | None,
        *,
        pending: bool = False,
    ) -> bool:
        """Whether ``demand``'s GPU part fits the node's devices of ``models``
        (with ``pending``: once the instances counted there are stopped too)."""
        milli = to_milli(demand[2])
        known = self._free(node)
        if milli <= 0 or known is None:
            return True
        free, cap, kinds = known
        if pending and node in self.extra:
            free = [f + x for f, x in zip(free, self.extra[node], strict=True)]
        return fits(free, cap, _qualifying(kinds, models), milli)

    def settle(self, node: Hashable) -> None:
        """The instances counted on ``node`` are chosen: their devices are free."""
        known = self._free(node)
        if known is None:
            return
        free = known[0]
        for j, x in enumerate(self.extra.pop(node, ())):
            free[j] += x

    def take(self, node: Hashable, demand: Sequence[float], models: frozenset[str] | None) -> None:
        """A claimant's instance takes its devices on ``node`` (the choice rule's)."""
        milli = to_milli(demand[2])
        known = self._free(node)
        if milli <= 0 or known is None:
            return
        free, cap, kinds = known
        _, per = shape(milli)
        mask = pick(free, cap, _qualifying(kinds, models), milli)
        for j in indices_of(max(mask, 0)):
            free[j] -= per


def _qualifying(kinds: Sequence[str], models: frozenset[str] | None) -> list[bool]:
    """Which devices (of these models) a task allowing ``models`` may use."""
    return [model_matches(kind, models) for kind in kinds]


def _victims(
    chosen: dict[int, tuple[Running, list[Hashable]]],
    pending: dict[Hashable, tuple[list[tuple[Running, int]], list[float]]],
    taken: dict[int, set[int]],
) -> list[Victim]:
    # Instances counted on nodes that never took a claimant's instance stay
    # running: a later claim of the same call may count them again.
    for counted, _ in pending.values():
        for run, position in counted:
            taken[id(run)].discard(position)
    return [Victim(run, len(nodes), tuple(nodes)) for run, nodes in chosen.values()]


__all__ = [
    "DeviceRoom",
    "Devices",
    "NodeRoom",
    "Slot",
    "choose_victims",
    "choose_victims_on_nodes",
    "claim_slots",
]
