"""Admission across tenants: who goes next, how far each may go, and reclaiming.

Pure and synchronous: no I/O, no clock of its own (every call that needs the
time takes ``now``). Of the nodes it knows what the caller tells it: the
live pool's total, the ``place`` callback's answers, and — for reclaim, when
given one — a :class:`NodeRoom` (what each node has free and where each
instance runs). The caller — the simulator, and the balancer that sees the
whole pool — submits waiting work, offers it capacity through
:meth:`Admission.admit` (whose ``place`` callback decides which node, if
any, or answers :data:`NO_ROOM` to end the pass), reports work that ended,
and acts on the victims :meth:`Admission.reclaim` names. Tasks are entries of
identical instances (``count``); the live balancer uses a count of one.

The rules — guarantees that shrink with the pool, borrowing up to a limit,
below-guarantee work before borrowing, DRF among equals, priority with
aging within a tenant, backfill within a window, reclaim by preempting
borrowed work youngest first after a grace period — are set out, beside
Kueue's, in docs/scheduling.md#tenants. A resource no tenant has a quota of
is not governed: only the pool limits it.

Tenants are kept sorted by rank, so a pass takes the first it may serve.
A pass remembers, per tenant, the least room its refused tasks need, and
passes a tenant over with three comparisons while the pool has less free;
it ends at once when the pool has less free than any waiting task needs.
The placer may end it too (:data:`NO_ROOM`): the pool may have room that no
node can use (credit, pieces too small), which only the placer knows. A
task the placer refused is not offered again in the same pass (room only
shrinks during a pass). A saturated pool so costs little per task.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, Sequence

from boson_shared.scheduling.admission_lines import (
    AGING_STEP_S,
    DEFAULT_PREEMPT_GRACE_S,
    DEFAULT_WINDOW,
    TenantLines,
)
from boson_shared.scheduling.admission_reclaim import (
    DeviceRoom,
    Devices,
    NodeRoom,
    choose_victims,
    choose_victims_on_nodes,
    claim_slots,
)
from boson_shared.scheduling.admission_state import (
    EPSILON,
    WORK,
    Running,
    TenantState,
    Victim,
    Waiting,
)

NO_ROOM = -1
"""What ``place`` returns when nothing that waits can be placed anywhere in
this pass (no node has credit, or none has room for the least any waiting
task needs): the pass ends at once, with no more offers."""


def _free_room(pool: Sequence[float], total: Sequence[float]) -> tuple[float, float, float]:
    """What the pool has free, resource by resource, never below 0 (a pool
    that shrank under its use has no room, and 0 keeps "d > free" false for
    d = 0). Written out, not with max(): in this interpreter a call of max()
    parses keyword arguments every time, and a pass asks this for every task."""
    f0, f1, f2 = pool[0] - total[0], pool[1] - total[1], pool[2] - total[2]
    return (f0 if f0 > 0.0 else 0.0), (f1 if f1 > 0.0 else 0.0), (f2 if f2 > 0.0 else 0.0)


class Admission(TenantLines):
    """The admission of one pool: passes in admission order, and reclaiming
    (the state and its bookkeeping: :class:`TenantLines`)."""

    # -- the lines -------------------------------------------------------------

    def submit(
        self,
        key: Hashable,
        tenant: str,
        demand: Sequence[float],
        now: float,
        *,
        count: int = 1,
        priority: int = 0,
        order: float = 0.0,
        front: bool = False,
        models: frozenset[str] | None = None,
    ) -> None:
        """Put ``count`` instances in ``tenant``'s line (``KeyError``: unknown tenant).

        ``models``: the GPU models its devices must be (``None``: any); reclaim
        frees GPU room for it only on devices of those models."""
        self._enqueue(
            Waiting(
                key,
                self.index[tenant],
                tuple(demand),
                count,
                priority,
                order,
                now,
                front,
                models=models,
            )
        )

    def withdraw(self, key: Hashable, tenant: str) -> int:
        """Take ``key``'s waiting instances out of ``tenant``'s line (cancelled,
        or away until it can run again); how many. Costs a walk of the line."""
        i = self.index[tenant]
        t = self._tenants[i]
        head = t.line[0][WORK] if t.line else None
        taken = 0
        for *_, w in t.line:
            if w.key == key and w.count > 0:
                taken += w.count
                for r, d in enumerate(w.demand):
                    t.pending[r] = max(0.0, t.pending[r] - d * w.count)
                w.count = 0
        if taken:
            self._settle(t)
            if (t.line[0][WORK] if t.line else None) is not head:
                self._rerank(i)
        return taken

    # -- admitting -------------------------------------------------------------

    @property
    def least_waiting(self) -> tuple[float, ...]:
        """No waiting task needs less of any resource than this (a bound,
        resource by resource; infinite when nothing waits): a placer with no
        room for it anywhere may answer :data:`NO_ROOM`."""
        return self._least

    def _allowed(self, t: TenantState, w: Waiting, within: bool) -> int:
        """How many of ``w``'s instances the tenant's ceiling and the pool allow
        (0: none); for a tenant ``within`` its guarantee, no more than take it
        to its guarantee (at least one: past it the tenant borrows, and waits
        behind every tenant still below its own)."""
        d0, d1, d2 = w.demand
        u0, u1, u2 = t.usage
        c0, c1, c2 = t.ceiling
        p0, p1, p2 = self._pool
        s0, s1, s2 = self._total
        room = float(w.count)
        # Written out over the three resources (this runs for every offer):
        # per resource the task asks for, what is left under the tenant's
        # ceiling and in the pool, the smaller of the two, in instances.
        if d0 > 0:
            left = c0 - u0 if c0 - u0 < p0 - s0 else p0 - s0
            if (left + EPSILON) / d0 < room:
                room = (left + EPSILON) / d0
        if d1 > 0:
            left = c1 - u1 if c1 - u1 < p1 - s1 else p1 - s1
            if (left + EPSILON) / d1 < room:
                room = (left + EPSILON) / d1
        if d2 > 0:
            left = c2 - u2 if c2 - u2 < p2 - s2 else p2 - s2
            if (left + EPSILON) / d2 < room:
                room = (left + EPSILON) / d2
        if room < 1:
            return 0
        if within:
            g0, g1, g2 = t.guarantee
            by_guarantee = math.inf
            if d0 > 0 and (g0 - u0 + EPSILON) / d0 < by_guarantee:
                by_guarantee = (g0 - u0 + EPSILON) / d0
            if d1 > 0 and (g1 - u1 + EPSILON) / d1 < by_guarantee:
                by_guarantee = (g1 - u1 + EPSILON) / d1
            if d2 > 0 and (g2 - u2 + EPSILON) / d2 < by_guarantee:
                by_guarantee = (g2 - u2 + EPSILON) / d2
            if by_guarantee < room:
                room = by_guarantee if by_guarantee >= 1 else 1.0
        return int(room)

    def admit(
        self,
        now: float,
        place: Callable[[Running], int],
        more: Callable[[], bool] | None = None,
    ) -> int:
        """One pass: offer capacity to waiting work in order; instances admitted.

        ``place`` gets each offer — the :class:`Running` it would become,
        ``count`` the instances it may start — and returns how many it
        started (0: none fit anywhere; :data:`NO_ROOM`: nothing waiting fits
        anywhere, so the pass ends); those count against the tenant from
        then on, under that run, until :meth:`release`. A task refused
        is not offered again in the same pass. ``more``, asked after each
        admission, may end the pass as :data:`NO_ROOM` would, before the
        next offer is made (the placer knows it has no room left at all).
        """
        admitted = 0
        tenants = self._tenants
        pool, total, least = self._pool, self._total, self._least
        f0, f1, f2 = _free_room(pool, total)
        # No waiting task needs less than ``least``: while the pool has less
        # free, nothing can be admitted and the pass is over at once.
        if least[0] > f0 + EPSILON or least[1] > f1 + EPSILON or least[2] > f2 + EPSILON:
            self._start_claims(now)
            return 0
        order = self._order
        tried: list[int] = []
        refused: set[Hashable] = set()
        while True:
            # The first tenant in admission order that has work waiting, was
            # not refused in this pass, and whose bound (the least room its
            # refused tasks need) fits in what the pool has free.
            i = -1
            for rank in order:
                if rank[0] >= 2.0:
                    break  # from here on, nothing waits
                k = rank[2]
                b = tenants[k].blocked
                if (
                    b is not None
                    and (b[0] > f0 + EPSILON or b[1] > f1 + EPSILON or b[2] > f2 + EPSILON)
                ) or k in tried:
                    continue
                i = k
                break
            if i < 0:
                break
            t = tenants[i]
            got = self._serve(i, t, now, place, refused)
            if got == NO_ROOM:
                break
            if not got:
                tried.append(i)
                continue
            admitted += got
            self._rerank(i)
            # The placer's word first: when no node has credit left (the
            # balancer under load) it ends the pass after this admission,
            # before the pool's free room is worked out again.
            if more is not None and not more():
                break
            f0, f1, f2 = _free_room(pool, total)  # shrunk by what was admitted
            least = self._least
            if least[0] > f0 + EPSILON or least[1] > f1 + EPSILON or least[2] > f2 + EPSILON:
                break
        self._start_claims(now)
        return admitted

    def _start_claims(self, now: float) -> None:
        """A claim starts for each tenant whose next task fits within its
        guarantee and still waits after the pass."""
        tenants = self._tenants
        for i in self._unclaimed:
            t = tenants[i]
            t.claim_since = now
            self._claims.add(i)
            heapq.heappush(self._claim_starts, (now, i))
        self._unclaimed.clear()

    def _serve(
        self,
        i: int,
        t: TenantState,
        now: float,
        place: Callable[[Running], int],
        placer_refused: set[Hashable],
    ) -> int:
        """Admit from the tenant's line, its head first; instances admitted
        (:data:`NO_ROOM`: the placer ended the pass).

        Looks past the head at up to ``window`` more tasks (backfill, in the
        line's heap order) and stops at the first it admits, so the next
        instance goes to whichever tenant is then first. When none is
        admitted, records in ``t.blocked`` the least each resource must have
        free before any of them can be — unless the placer refused one, for
        which no such bound exists. Tasks in ``placer_refused`` (refused by
        the placer earlier in this pass) are passed over; those it refuses
        now join them.
        """
        bound: list[float] | None = None
        bounded = True
        refused: set[tuple[float, ...]] | None = None  # made on the first refusal
        within = self._ranks[i][0] == 0.0
        line = t.line
        looked = self.window + 1  # the head and the window past it
        if len(line) < looked:
            looked = len(line)
        for k in range(looked):
            w = line[k][WORK]
            if w.count <= 0 or (refused is not None and w.demand in refused):
                continue
            if placer_refused and w.key in placer_refused:
                bounded = False  # refused by the placer: no bound, as below
                continue
            allowed = self._allowed(t, w, within)
            if not allowed:
                if refused is None:
                    refused = set()
                refused.add(w.demand)
                bound = (
                    list(w.demand)
                    if bound is None
                    else [min(b, d) for b, d in zip(bound, w.demand, strict=True)]
                )
                continue
            run = Running(
                w.key,
                i,
                w.demand,
                allowed,
                w.priority,
                w.order,
                w.since,
                now,
                next(self._seq),
                w.arrival,
                w.models,
            )
            placed = place(run)
            if placed == NO_ROOM:
                t.unplaced = True
                t.blocked = None
                return NO_ROOM
            if placed > allowed:
                placed = allowed
            if placed <= 0:
                bounded = False
                t.unplaced = True
                placer_refused.add(w.key)
                continue
            t.unplaced = False
            run.count = placed
            self._running.append(run)
            self._charge(t, w.demand, placed)
            w.count -= placed
            self._settle(t)
            t.blocked = None  # its look changed: a new bound comes with the next refusal
            return placed
        t.blocked = tuple(bound) if bounded and bound is not None else None
        return 0

    # -- reclaiming ---------------------------------------------------------------

    def reclaim(self, now: float, nodes: NodeRoom | None = None) -> list[Victim]:
        """Preempt borrowed work for tenants whose claim has waited ``grace_s``.

        A claim starts when a pass leaves a tenant's next task waiting although
        it fits within the tenant's guarantee, and ends when the tenant's next
        task no longer does (admitted, or the line empty). Call after passes
        and at :meth:`next_reclaim`. Victims are released and back in their
        tenants' lines when this returns; the caller stops them.

        With ``nodes`` (what the caller knows of each node and where each
        instance runs), victims are chosen node by node so that the room they
        free takes the claimant's waiting instances, and each names the nodes
        of the instances to stop; without, they are chosen on the pool's
        total (:mod:`~boson_shared.scheduling.admission_reclaim`).
        """
        victims: list[Victim] = []
        earliest = self._earliest_claim()
        if earliest is None or now - earliest < self.grace_s:
            return victims
        # What earlier claims of this call take of the free room (theirs now),
        # so a later claim is not counted as served by capacity freed for them.
        taken = [0.0] * self._width
        base: dict[Hashable, list[float]] = {}
        device_base: dict[Hashable, Devices] = {}
        chosen_positions: dict[int, set[int]] = {}
        for i in sorted(self._claims):
            t = self._tenants[i]
            if t.claim_since is None or now - t.claim_since < self.grace_s or not t.may_preempt:
                continue
            if nodes is not None:
                room = [g - u for g, u in zip(t.guarantee, t.usage, strict=True)]
                line = [e[WORK] for e in heapq.nsmallest(self.window + 1, t.line)]
                slots = claim_slots(line, room, self.window + 1)
                chosen = choose_victims_on_nodes(
                    self._running,
                    self._tenants,
                    i,
                    slots,
                    nodes,
                    base,
                    chosen_positions,
                    self._pool,
                    device_base,
                )
            else:
                want = [
                    max(0.0, min(g - u, p))
                    for g, u, p in zip(t.guarantee, t.usage, t.pending, strict=True)
                ]
                # The pool's free total serves the claim unless the placer just
                # refused the tenant's work: then it lies in pieces too small.
                free = [
                    0.0 if t.unplaced else max(0.0, c - total - k)
                    for c, total, k in zip(self._pool, self._total, taken, strict=True)
                ]
                need = [max(0.0, w - f) for w, f in zip(want, free, strict=True)]
                taken = [k + w for k, w in zip(taken, want, strict=True)]
                if not any(n > EPSILON for n in need):
                    continue
                chosen = choose_victims(self._running, self._tenants, i, need, self._pool)
            for victim in chosen:
                self.requeue(victim.run, victim.count)
            victims += chosen
        return victims

    def next_reclaim(self) -> float | None:
        """When the earliest standing claim's grace ends (None: no claim)."""
        earliest = self._earliest_claim()
        return None if earliest is None else earliest + self.grace_s


__all__ = [
    "AGING_STEP_S",
    "DEFAULT_PREEMPT_GRACE_S",
    "DEFAULT_WINDOW",
    "EPSILON",
    "NO_ROOM",
    "Admission",
    "DeviceRoom",
    "Devices",
    "NodeRoom",
    "Running",
    "Victim",
    "Waiting",
]
