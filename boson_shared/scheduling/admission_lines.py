"""The state admission across tenants keeps, and its bookkeeping.

:class:`TenantLines` holds the tenants, their lines of waiting work, their
usage against guarantees and ceilings, and the running work; it keeps each
tenant's rank for the admission order and its claim on its guarantee up to
date as work joins, starts and ends. :class:`~boson_shared.scheduling.
admission.Admission` adds the passes and reclaiming on top.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Hashable, Sequence

from boson_shared.scheduling.admission_state import (
    EPSILON,
    WORK,
    Running,
    TenantState,
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


Rank = tuple[float, float, int]
"""A tenant's place in the admission order: 0 below its guarantee, 1
borrowing, 2 nothing waiting; its weighted dominant share; its index."""


def _position(order: list[Rank], r0: float, r1: float, r2: int) -> int:
    """Where rank ``(r0, r1, r2)`` is, or goes, in ``order`` (sorted ranks),
    by bisection. Written out, not with :mod:`bisect`: compiled, the ranks'
    numbers compare as plain floats here, where bisect compares tuples
    object by object (twice a rerank, and a task makes two reranks)."""
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        a0, a1, a2 = order[mid]
        if a0 < r0 or (a0 == r0 and (a1 < r1 or (a1 == r1 and a2 < r2))):
            lo = mid + 1
        else:
            hi = mid
    return lo


class TenantLines:
    """Tenants, their lines and their usage in one pool (no passes: see Admission)."""

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
        self._ranks: list[Rank] = [(2.0, 0.0, i) for i in range(len(specs))]
        """Each tenant's place in the admission order (see :data:`Rank`)."""
        self._order: list[Rank] = sorted(self._ranks)
        """Every tenant's rank, in order: a pass takes the first it may serve."""
        if width != 3:
            raise ValueError("admission handles exactly three resources")
        self._claims: set[int] = set()
        self._claim_starts: list[tuple[float, int]] = []
        """(claim start, tenant), a heap; entries of ended claims are dropped lazily."""
        self._unclaimed: set[int] = set()
        """Tenants whose next task fits within their guarantee, with no claim yet."""
        self._least: tuple[float, ...] = (math.inf,) * width
        self._lines_waiting = 0
        """Tenants whose line is not empty."""
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
            t = self._tenants[i]
            t.blocked = None
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
        return sum(max(0, e[WORK].count) for e in self._tenants[self.index[tenant]].line)

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
        return line[0][WORK].demand if line else None

    def has_waiting(self) -> bool:
        return self._lines_waiting > 0

    def running(self) -> list[Running]:
        """Admitted work still running, oldest first."""
        return [r for r in self._running if r.count > 0]

    # -- the lines -------------------------------------------------------------

    def _enqueue(self, w: Waiting) -> None:
        t = self._tenants[w.tenant]
        # Aging in whole steps keeps the key fixed while a task waits: every
        # waiting task gains the same points as time passes, so only the
        # step it joined in matters, and tasks that joined in one step keep
        # the caller's order.
        step = math.floor(w.since / self.aging_step_s)
        if w.arrival < 0:
            w.arrival = next(self._seq)
        key0, key1 = (0.0 if w.front else 1.0), step - w.priority
        # The tenant's bound stays valid with the newcomer's demand in it: what
        # kept every look-at task out still keeps them out.
        d0, d1, d2 = w.demand
        bound = t.blocked
        if bound is not None and (d0 < bound[0] or d1 < bound[1] or d2 < bound[2]):
            t.blocked = (min(bound[0], d0), min(bound[1], d1), min(bound[2], d2))
        least = self._least
        if d0 < least[0] or d1 < least[1] or d2 < least[2]:
            self._least = (min(least[0], d0), min(least[1], d1), min(least[2], d2))
        line = t.line
        was_head = line[0][WORK] if line else None
        if not line:
            self._lines_waiting += 1
        # Its entry: its place in line (given back first; priority with aging;
        # the caller's order; submission order; a tie-breaker) and, last, itself.
        heapq.heappush(line, (key0, key1, w.order, w.arrival, next(self._seq), w))
        n = w.count
        pending = t.pending
        p0, p1, p2 = pending
        pending[0] = p0 + d0 * n
        pending[1] = p1 + d1 * n
        pending[2] = p2 + d2 * n
        if line[0][WORK] is not was_head:
            self._rerank(w.tenant)

    def _rerank(self, i: int) -> None:
        """Give tenant ``i`` its rank (:data:`Rank`) from its usage and its
        line's head, keeping :attr:`_order` sorted, and its claim with it."""
        t = self._tenants[i]
        u0, u1, u2 = t.usage
        p0, p1, p2 = self._pool
        # The dominant share, written out over the three resources (this runs
        # twice for every task): the largest fraction of the pool it uses.
        share = u0 / p0 if p0 > 0 and u0 > 0 else 0.0
        if p1 > 0 and u1 > share * p1:
            share = u1 / p1
        if p2 > 0 and u2 > share * p2:
            share = u2 / p2
        share /= t.weight
        line = t.line
        if line:
            h0, h1, h2 = line[0][WORK].demand
            g0, g1, g2 = t.guarantee
            within = u0 + h0 <= g0 + EPSILON and u1 + h1 <= g1 + EPSILON and u2 + h2 <= g2 + EPSILON
            standing = 0.0 if within else 1.0
        else:
            within = False
            standing = 2.0
        was, was_share, _ = self._ranks[i]
        if standing != was or share != was_share:
            order = self._order
            del order[_position(order, was, was_share, i)]
            rank = (standing, share, i)
            order.insert(_position(order, standing, share, i), rank)
            self._ranks[i] = rank
        if not within:
            self._drop_claim(i, t)
        elif t.may_preempt and t.claim_since is None:
            self._unclaimed.add(i)

    def _drop_claim(self, i: int, t: TenantState) -> None:
        self._unclaimed.discard(i)
        if t.claim_since is not None:
            t.claim_since = None
            self._claims.discard(i)

    def _settle(self, t: TenantState) -> None:
        """Drop admitted entries off the top of the tenant's line."""
        line = t.line
        if not line:
            return
        while line and line[0][WORK].count <= 0:
            heapq.heappop(line)
        if not line:
            self._lines_waiting -= 1
            if not self._lines_waiting:
                self._least = (math.inf,) * self._width  # nothing waits: no bound left

    def _charge(self, t: TenantState, demand: Sequence[float], count: int) -> None:
        d0, d1, d2 = demand
        if count != 1:
            d0, d1, d2 = d0 * count, d1 * count, d2 * count
        # Written out over the three resources: this runs for every task.
        usage, pending, total = t.usage, t.pending, self._total
        u0, u1, u2 = usage
        usage[0] = u0 + d0
        usage[1] = u1 + d1
        usage[2] = u2 + d2
        w0, w1, w2 = pending
        pending[0] = w0 - d0
        pending[1] = w1 - d1
        pending[2] = w2 - d2
        s0, s1, s2 = total
        total[0] = s0 + d0
        total[1] = s1 + d1
        total[2] = s2 + d2

    def adopt(
        self,
        key: Hashable,
        tenant: str,
        demand: Sequence[float],
        now: float,
        *,
        priority: int = 0,
        order: float = 0.0,
    ) -> Running:
        """Count one instance already running, admitted by an earlier holder of
        this pool (a balancer that took over): it holds ``tenant``'s quota from
        ``now`` until released, as if admitted then (``KeyError``: unknown tenant)."""
        i = self.index[tenant]
        t = self._tenants[i]
        seq = next(self._seq)
        run = Running(key, i, tuple(demand), 1, priority, order, now, now, seq, seq)
        self._running.append(run)
        for r in range(self._width):
            t.pending[r] += run.demand[r]  # _charge moves pending to usage
        self._charge(t, run.demand, 1)
        self._rerank(i)
        return run

    def release(self, run: Running, count: int | None = None) -> None:
        """``count`` (default all) instances of ``run`` ended; their quota is free."""
        n = run.count if count is None else min(count, run.count)
        if n <= 0:
            return
        run.count -= n
        d0, d1, d2 = run.demand
        if n != 1:
            d0, d1, d2 = d0 * n, d1 * n, d2 * n
        # Written out over the three resources (this runs for every result),
        # never below 0.
        usage, total = self._tenants[run.tenant].usage, self._total
        u0, u1, u2 = usage
        u0, u1, u2 = u0 - d0, u1 - d1, u2 - d2
        usage[0] = u0 if u0 > 0.0 else 0.0
        usage[1] = u1 if u1 > 0.0 else 0.0
        usage[2] = u2 if u2 > 0.0 else 0.0
        s0, s1, s2 = total
        s0, s1, s2 = s0 - d0, s1 - d1, s2 - d2
        total[0] = s0 if s0 > 0.0 else 0.0
        total[1] = s1 if s1 > 0.0 else 0.0
        total[2] = s2 if s2 > 0.0 else 0.0
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
                models=run.models,
            )
        )

    def _earliest_claim(self) -> float | None:
        starts = self._claim_starts
        while starts and self._tenants[starts[0][1]].claim_since != starts[0][0]:
            heapq.heappop(starts)
        return starts[0][0] if starts else None


__all__ = ["AGING_STEP_S", "DEFAULT_PREEMPT_GRACE_S", "DEFAULT_WINDOW", "Rank", "TenantLines"]
