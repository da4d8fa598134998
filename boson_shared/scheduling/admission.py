"""Admission across tenants: who goes next, how far each may go, and reclaiming.

Pure and synchronous: no I/O, no clock of its own (every call that needs the
time takes ``now``), no knowledge of nodes beyond the live pool's total. The
caller — the simulator, and the balancer that sees the whole pool — submits
waiting work, offers it capacity through :meth:`Admission.admit` (whose
``place`` callback decides which node, if any), reports work that ended, and
acts on the victims :meth:`Admission.reclaim` names. Tasks are entries of
identical instances (``count``); the live balancer uses a count of one.

The rules — guarantees that shrink with the pool, borrowing up to a limit,
below-guarantee work before borrowing, DRF among equals, priority with
aging within a tenant, backfill within a window, reclaim by preempting
borrowed work youngest first after a grace period — are set out, beside
Kueue's, in docs/scheduling.md#tenants. A resource no tenant has a quota of
is not governed: only the pool limits it.

A pass remembers, per tenant, the least room its refused tasks need, and
tenants are grouped by it: while the pool's free total is below it, a whole
group is passed over with one comparison, so a saturated pool costs little
per task.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence

from boson_shared.scheduling.admission_reclaim import (
    NodeRoom,
    choose_victims,
    choose_victims_on_nodes,
    claim_slots,
)
from boson_shared.scheduling.admission_state import (
    EPSILON,
    Offer,
    Running,
    TenantState,
    Victim,
    Waiting,
    dominant,
)
from boson_shared.scheduling.tenants import TenantsConfig, guarantees

DEFAULT_PREEMPT_GRACE_S = 30.0
"""How long a tenant's claim on its quota waits for capacity to free by
itself before borrowed work is preempted (``BOSON_PREEMPT_GRACE_S``)."""

AGING_STEP_S = 60.0
"""Seconds of waiting that raise a task's priority by one point."""

DEFAULT_WINDOW = 16
"""Tasks of one tenant that a pass may skip (unadmissible or unplaceable)."""


class Admission:
    """The admission state of one pool: tenants, their lines and their usage."""

    def __init__(
        self,
        config: TenantsConfig,
        *,
        grace_s: float = DEFAULT_PREEMPT_GRACE_S,
        aging_step_s: float = AGING_STEP_S,
        window: int = DEFAULT_WINDOW,
        borrowing: bool = True,
    ) -> None:
        """``borrowing`` False caps every tenant at its guarantee (strict quotas)."""
        specs = config.tenants
        self.names = tuple(specs)
        self.index = {name: i for i, name in enumerate(self.names)}
        width = len(next(iter(specs.values())).quota_vector())
        self._tenants = [
            TenantState(
                name,
                spec.weight,
                spec.quota_vector(),
                spec.borrowing_vector() if borrowing else (0.0,) * width,
                spec.may_preempt,
                usage=[0.0] * width,
                pending=[0.0] * width,
            )
            for name, spec in specs.items()
        ]
        self.grace_s = grace_s
        self.aging_step_s = aging_step_s
        self.window = window
        self._width = width
        self._pool: tuple[float, ...] = (0.0,) * width
        self._total = [0.0] * width
        self._ranks: list[tuple[float, ...]] = [(1.0, 0.0, 0.0)] * len(self._tenants)
        if width != 3:
            raise ValueError("admission handles exactly three resources")
        self._claims: set[int] = set()
        self._claim_starts: list[tuple[float, int]] = []
        """(claim start, tenant), a heap; entries of ended claims are dropped lazily."""
        self._unbounded: set[int] = set()
        self._unclaimed: set[int] = set()
        """Tenants whose next task fits within their guarantee, with no claim yet."""
        self._bounds: dict[tuple[float, ...], set[int]] = {}
        self._least: tuple[float, ...] = (math.inf,) * width
        """Per resource, no more than any waiting task's demand (a lower bound:
        lowered as tasks join, recomputed only when the lines run empty)."""
        self._running: deque[Running] = deque()
        self._ended = 0
        self._seq = itertools.count()
        self.set_pool(self._pool)

    # -- the pool ----------------------------------------------------------

    def set_pool(self, capacity: Sequence[float]) -> None:
        """The live pool's total capacity changed (nodes joined, died or came back)."""
        self._pool = tuple(float(c) for c in capacity)
        quotas = [t.quota for t in self._tenants]
        # A resource no tenant has a quota of is not governed: only the pool
        # limits it (a file of CPU quotas says nothing about memory).
        governed = [any(q[r] > 0 for q in quotas) for r in range(self._width)]
        for t, g in zip(self._tenants, guarantees(quotas, self._pool), strict=True):
            g = tuple(x if governed[r] else math.inf for r, x in enumerate(g))
            t.guarantee = g
            t.ceiling = tuple(a + b for a, b in zip(g, t.limit, strict=True))
        for i in range(len(self._tenants)):
            self._block(i, None)
            self._rerank(i)

    @property
    def pool(self) -> tuple[float, ...]:
        return self._pool

    # -- reading the state (gauges, metrics, tests) --------------------------

    def usage(self, tenant: str) -> tuple[float, ...]:
        return tuple(self._tenants[self.index[tenant]].usage)

    def pending(self, tenant: str) -> tuple[float, ...]:
        """Σ demand × count of the tenant's waiting work."""
        return tuple(self._tenants[self.index[tenant]].pending)

    def waiting(self, tenant: str) -> int:
        return sum(max(0, w.count) for _, w in self._tenants[self.index[tenant]].line)

    def guarantee(self, tenant: str) -> tuple[float, ...]:
        return self._tenants[self.index[tenant]].guarantee

    def ceiling(self, tenant: str) -> tuple[float, ...]:
        return self._tenants[self.index[tenant]].ceiling

    def borrowed(self, tenant: str) -> tuple[float, ...]:
        t = self._tenants[self.index[tenant]]
        return tuple(max(0.0, u - g) for u, g in zip(t.usage, t.guarantee, strict=True))

    def dominant_share(self, tenant: str) -> float:
        """The largest fraction of the pool the tenant uses of any resource."""
        return dominant(self._tenants[self.index[tenant]].usage, self._pool)

    def next_demand(self, tenant: str) -> tuple[float, ...] | None:
        """The per-instance demand of the tenant's next task (None: nothing waits)."""
        line = self._tenants[self.index[tenant]].line
        return line[0][1].demand if line else None

    def has_waiting(self) -> bool:
        return any(t.line for t in self._tenants)

    def running(self) -> list[Running]:
        """Admitted work still running, oldest first."""
        return [r for r in self._running if r.count > 0]

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
    ) -> None:
        """Put ``count`` instances in ``tenant``'s line (``KeyError``: unknown tenant)."""
        self._enqueue(
            Waiting(key, self.index[tenant], tuple(demand), count, priority, order, now, front)
        )

    def _enqueue(self, w: Waiting) -> None:
        t = self._tenants[w.tenant]
        # Aging in whole steps keeps the key fixed while a task waits: every
        # waiting task gains the same points as time passes, so only the
        # step it joined in matters, and tasks that joined in one step keep
        # the caller's order.
        step = math.floor(w.since / self.aging_step_s)
        if w.arrival < 0:
            w.arrival = next(self._seq)
        w.rank = (0.0 if w.front else 1.0, step - w.priority, w.order, w.arrival, next(self._seq))
        # The tenant's bound stays valid with the newcomer's demand in it: what
        # kept every look-at task out still keeps them out.
        d0, d1, d2 = w.demand
        bound = t.blocked
        if bound is not None and (d0 < bound[0] or d1 < bound[1] or d2 < bound[2]):
            self._block(w.tenant, (min(bound[0], d0), min(bound[1], d1), min(bound[2], d2)))
        least = self._least
        if d0 < least[0] or d1 < least[1] or d2 < least[2]:
            self._least = (min(least[0], d0), min(least[1], d1), min(least[2], d2))
        line = t.line
        was_head = line[0][1] if line else None
        heapq.heappush(line, (w.rank, w))
        pending, n = t.pending, w.count
        pending[0] += d0 * n
        pending[1] += d1 * n
        pending[2] += d2 * n
        if line[0][1] is not was_head:
            self._rerank(w.tenant)

    def _rerank(self, i: int) -> None:
        t = self._tenants[i]
        usage, pool = t.usage, self._pool
        share = 0.0
        for r in range(3):
            p = pool[r]
            if p > 0 and usage[r] > share * p:
                share = usage[r] / p
        share /= t.weight
        if not t.line:
            self._ranks[i] = (2.0, share, float(i))
            self._drop_claim(i, t)
            return
        head = t.line[0][1].demand
        g = t.guarantee
        within = (
            usage[0] + head[0] <= g[0] + EPSILON
            and usage[1] + head[1] <= g[1] + EPSILON
            and usage[2] + head[2] <= g[2] + EPSILON
        )
        self._ranks[i] = (0.0 if within else 1.0, share, float(i))
        if not within:
            self._drop_claim(i, t)
        elif t.may_preempt and t.claim_since is None:
            self._unclaimed.add(i)

    def _drop_claim(self, i: int, t: TenantState) -> None:
        self._unclaimed.discard(i)
        if t.claim_since is not None:
            t.claim_since = None
            self._claims.discard(i)

    # -- admitting -------------------------------------------------------------

    def _room(self, t: TenantState, demand: Sequence[float]) -> int:
        """How many instances of ``demand`` the tenant's ceiling and the pool allow."""
        room = math.inf
        ceiling, usage, pool, total = t.ceiling, t.usage, self._pool, self._total
        for r in range(3):
            d = demand[r]
            if d > 0:
                by_ceiling = (ceiling[r] - usage[r] + EPSILON) / d
                by_pool = (pool[r] - total[r] + EPSILON) / d
                if by_ceiling < room:
                    room = by_ceiling
                if by_pool < room:
                    room = by_pool
                if room < 1:
                    return 0
        if room == math.inf:
            return 1 << 62
        return math.floor(room)

    @staticmethod
    def _fits(limit: Sequence[float], usage: Sequence[float], demand: Sequence[float]) -> int:
        """How many instances of ``demand`` fit between ``usage`` and ``limit``."""
        room = math.inf
        for lim, u, d in zip(limit, usage, demand, strict=True):
            if d > 0:
                room = min(room, (lim - u + EPSILON) / d)
        return 1 << 62 if room == math.inf else max(0, math.floor(room))

    def admit(self, now: float, place: Callable[[Offer], int]) -> int:
        """One pass: offer capacity to waiting work in order; instances admitted.

        ``place`` gets each offer and returns how many of its instances it
        started (0: none fit anywhere); those count against the tenant from
        then on, under ``offer.run``, until :meth:`release`.
        """
        admitted = 0
        ranks = self._ranks
        tenants = self._tenants
        pool, total, least = self._pool, self._total, self._least
        # What the pool has free (never below 0: a pool that shrank under its
        # use has no room, and 0 keeps "d > free" false for d = 0).
        f0 = max(0.0, pool[0] - total[0])
        f1 = max(0.0, pool[1] - total[1])
        f2 = max(0.0, pool[2] - total[2])
        # No waiting task needs less than ``least``: while the pool has less
        # free, nothing can be admitted and the pass is over at once.
        if least[0] > f0 + EPSILON or least[1] > f1 + EPSILON or least[2] > f2 + EPSILON:
            self._start_claims(now)
            return 0
        # Tenants whose refused tasks cannot fit in what the pool has free are
        # left out at once: a saturated pool costs a comparison a tenant.
        # ``lo``: the least each resource must have free for any tenant still
        # open on an old refusal; once the pool has less, those are dropped.
        open_ = [i for i in self._unbounded if tenants[i].line]
        bounded: set[int] = set()
        l0 = l1 = l2 = math.inf
        for need, members in self._bounds.items():
            if not (need[0] > f0 + EPSILON or need[1] > f1 + EPSILON or need[2] > f2 + EPSILON):
                open_ += members
                bounded |= members
                l0, l1, l2 = min(l0, need[0]), min(l1, need[1]), min(l2, need[2])
        while open_:
            if bounded and (l0 > f0 + EPSILON or l1 > f1 + EPSILON or l2 > f2 + EPSILON):
                open_ = [k for k in open_ if k not in bounded]
                bounded.clear()
                if not open_:
                    break
            i = min(open_, key=ranks.__getitem__) if len(open_) > 1 else open_[0]
            open_.remove(i)
            bounded.discard(i)
            t = tenants[i]
            b = t.blocked
            got = 0
            if b is None or not (b[0] > f0 + EPSILON or b[1] > f1 + EPSILON or b[2] > f2 + EPSILON):
                got = self._serve(i, t, now, place)
            if not got:
                continue
            admitted += got
            # What the pool has free shrank by what was admitted.
            f0 = max(0.0, pool[0] - total[0])
            f1 = max(0.0, pool[1] - total[1])
            f2 = max(0.0, pool[2] - total[2])
            self._rerank(i)
            least = self._least
            if least[0] > f0 + EPSILON or least[1] > f1 + EPSILON or least[2] > f2 + EPSILON:
                break
            if t.line:
                open_.append(i)
        self._start_claims(now)
        return admitted

    def _start_claims(self, now: float) -> None:
        """A claim starts for each tenant whose next task fits within its
        guarantee and still waits after the pass."""
        if not self._unclaimed:
            return
        tenants = self._tenants
        for i in self._unclaimed:
            t = tenants[i]
            t.claim_since = now
            self._claims.add(i)
            heapq.heappush(self._claim_starts, (now, i))
        self._unclaimed.clear()

    def _serve(self, i: int, t: TenantState, now: float, place: Callable[[Offer], int]) -> int:
        """Admit from the tenant's line, its head first; instances admitted.

        Looks past the head at up to ``window`` more tasks (backfill, in the
        line's heap order) and stops at the first it admits, so the next
        instance goes to whichever tenant is then first. When none is
        admitted, records in ``t.blocked`` the least each resource must have
        free before any of them can be — unless the placer refused one, for
        which no such bound exists.
        """
        bound: list[float] | None = None
        bounded = True
        refused: set[tuple[float, ...]] = set()
        within = self._ranks[i][0] == 0.0
        for _, w in t.line[: self.window + 1]:
            if w.count <= 0 or w.demand in refused:
                continue
            allowed = min(w.count, self._room(t, w.demand))
            if not allowed:
                refused.add(w.demand)
                bound = (
                    list(w.demand)
                    if bound is None
                    else [min(b, d) for b, d in zip(bound, w.demand, strict=True)]
                )
                continue
            if within:
                # Up to its guarantee only: past it the tenant borrows, and
                # waits behind every tenant still below its own.
                allowed = min(allowed, max(1, self._fits(t.guarantee, t.usage, w.demand)))
            run = Running(
                w.key,
                i,
                w.demand,
                0,
                w.priority,
                w.order,
                w.since,
                now,
                next(self._seq),
                w.arrival,
            )
            placed = max(0, min(allowed, place(Offer(w.key, t.name, w.demand, allowed, run))))
            if not placed:
                bounded = False
                t.unplaced = True
                continue
            t.unplaced = False
            run.count = placed
            self._running.append(run)
            self._charge(t, w.demand, placed)
            w.count -= placed
            self._settle(t)
            self._block(i, None)  # its look changed: a new bound comes with the next refusal
            return placed
        self._block(i, tuple(bound) if bounded and bound is not None else None)
        return 0

    def _block(self, i: int, bound: tuple[float, ...] | None) -> None:
        """Set tenant ``i``'s bound, keeping tenants grouped by bound: in a
        saturated pool most share one, and a pass checks it once for all."""
        t = self._tenants[i]
        old = t.blocked
        if old == bound and (old is not None or i in self._unbounded):
            return
        if old is not None:
            members = self._bounds[old]
            members.discard(i)
            if not members:
                del self._bounds[old]
        self._unbounded.discard(i)
        t.blocked = bound
        if bound is None:
            self._unbounded.add(i)
        else:
            self._bounds.setdefault(bound, set()).add(i)

    def _settle(self, t: TenantState) -> None:
        """Drop admitted entries off the top of the tenant's line."""
        line = t.line
        while line and line[0][1].count <= 0:
            heapq.heappop(line)
        if not line and not any(other.line for other in self._tenants):
            self._least = (math.inf,) * self._width  # nothing waits: no bound left

    def _charge(self, t: TenantState, demand: Sequence[float], count: int) -> None:
        usage, pending, total = t.usage, t.pending, self._total
        for r in range(3):
            amount = demand[r] * count
            usage[r] += amount
            pending[r] -= amount
            total[r] += amount

    def release(self, run: Running, count: int | None = None) -> None:
        """``count`` (default all) instances of ``run`` ended; their quota is free."""
        n = run.count if count is None else min(count, run.count)
        if n <= 0:
            return
        run.count -= n
        usage, total, demand = self._tenants[run.tenant].usage, self._total, run.demand
        for r in range(3):
            amount = demand[r] * n
            usage[r] = max(0.0, usage[r] - amount)
            total[r] = max(0.0, total[r] - amount)
        self._rerank(run.tenant)
        if run.count == 0:
            self._ended += 1
            running = self._running
            while running and running[0].count == 0:
                running.popleft()
                self._ended -= 1
            if self._ended > len(running) // 2:
                self._running = deque(r for r in running if r.count > 0)
                self._ended = 0

    def requeue(self, run: Running, count: int) -> None:
        """``count`` instances of ``run`` stopped before the end (preempted, node lost):
        release them and put them back at the front of their tenant's line."""
        n = min(count, run.count)
        if n <= 0:
            return
        self.release(run, n)
        # It keeps the time it first joined the line: among work given back,
        # the oldest goes first, and it keeps what it earned by aging.
        self._enqueue(
            Waiting(
                run.key,
                run.tenant,
                run.demand,
                n,
                run.priority,
                run.order,
                run.since,
                True,
                run.arrival,
            )
        )

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
        chosen_positions: dict[int, set[int]] = {}
        for i in sorted(self._claims):
            t = self._tenants[i]
            if t.claim_since is None or now - t.claim_since < self.grace_s or not t.may_preempt:
                continue
            if nodes is not None:
                room = [g - u for g, u in zip(t.guarantee, t.usage, strict=True)]
                line = [w for _, w in heapq.nsmallest(self.window + 1, t.line)]
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

    def _earliest_claim(self) -> float | None:
        starts = self._claim_starts
        while starts and self._tenants[starts[0][1]].claim_since != starts[0][0]:
            heapq.heappop(starts)
        return starts[0][0] if starts else None


__all__ = [
    "AGING_STEP_S",
    "DEFAULT_PREEMPT_GRACE_S",
    "DEFAULT_WINDOW",
    "EPSILON",
    "Admission",
    "NodeRoom",
    "Offer",
    "Running",
    "Victim",
    "Waiting",
]
