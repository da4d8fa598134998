"""The state admission keeps: lines of waiting work, running work, victims.

The data :class:`~boson_shared.scheduling.admission.Admission` works on, and
the choice of victims for a claim, kept apart so each module holds one idea.
"""

from __future__ import annotations

from collections.abc import Hashable, Reversible, Sequence
from dataclasses import dataclass, field

EPSILON = 1e-9
"""Slack in every comparison of amounts (sums of floats)."""


@dataclass(slots=True)
class Waiting:
    """Instances of one task in its tenant's line."""

    key: Hashable
    tenant: int
    demand: tuple[float, ...]
    count: int
    priority: int
    order: float
    since: float
    front: bool
    arrival: int = -1
    """Its place in submission order, kept when it is given back."""
    rank: tuple[float, ...] = ()


@dataclass(slots=True, eq=False)
class Running:
    """Instances admitted together: the handle the caller releases or stops."""

    key: Hashable
    tenant: int
    demand: tuple[float, ...]
    count: int
    priority: int
    order: float
    since: float
    started: float
    seq: int
    arrival: int


@dataclass(frozen=True, slots=True)
class Offer:
    """What a pass offers the caller to place: up to ``count`` instances of ``key``."""

    key: Hashable
    tenant: str
    demand: tuple[float, ...]
    count: int
    run: Running


@dataclass(frozen=True, slots=True)
class Victim:
    """``count`` instances of ``run`` to stop: they are already back in line."""

    run: Running
    count: int


@dataclass
class TenantState:
    """One tenant's terms and state inside an admission."""

    name: str
    weight: float
    quota: tuple[float, ...]
    limit: tuple[float, ...]
    may_preempt: bool
    guarantee: tuple[float, ...] = ()
    ceiling: tuple[float, ...] = ()
    usage: list[float] = field(default_factory=list)
    pending: list[float] = field(default_factory=list)
    line: list[tuple[tuple[float, ...], Waiting]] = field(default_factory=list)
    claim_since: float | None = None
    unplaced: bool = False
    """The placer refused its last offer: what the pool has free does not fit."""
    blocked: tuple[float, ...] | None = None
    """The least free room its refused tasks need (see ``_serve``)."""


def choose_victims(
    running: Reversible[Running],
    tenants: Sequence[TenantState],
    claimant: int,
    need: list[float],
) -> list[Victim]:
    """Running work to stop so that ``need`` is freed for tenant ``claimant``.

    Youngest first (``running`` oldest first), only work of tenants above
    their guarantee on a resource the claim still needs, and of each only
    while it stays above; an empty list if that cannot cover the need.
    """
    left = list(need)
    over = [[u - g for u, g in zip(t.usage, t.guarantee, strict=True)] for t in tenants]
    width = len(left)
    if not any(
        excess[r] > EPSILON and left[r] > EPSILON
        for k, excess in enumerate(over)
        if k != claimant
        for r in range(width)
    ):
        return []  # nobody borrows what the claim needs
    chosen: list[Victim] = []
    for run in reversed(running):
        if run.count <= 0 or run.tenant == claimant:
            continue
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


def dominant(usage: Sequence[float], pool: Sequence[float]) -> float:
    return max((u / p for u, p in zip(usage, pool, strict=True) if p > 0), default=0.0)


__all__ = [
    "EPSILON",
    "Offer",
    "Running",
    "TenantState",
    "Victim",
    "Waiting",
    "choose_victims",
    "dominant",
]
