"""The state admission keeps: lines of waiting work, running work, victims.

The data :class:`~boson_shared.scheduling.admission.Admission` works on,
kept apart so each module holds one idea.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Final

EPSILON = 1e-9
"""Slack in every comparison of amounts (sums of floats)."""


class Waiting:
    """Instances of one task in its tenant's line.

    Like :class:`Running`, a class with its own ``__init__`` rather than a
    dataclass: compiled (boson_shared/runtime/compiled.py), a dataclass's
    generated ``__init__`` still runs as interpreted Python, and one of each
    is made for every task."""

    def __init__(
        self,
        key: Hashable,
        tenant: int,
        demand: tuple[float, ...],
        count: int,
        priority: int,
        order: float,
        since: float,
        front: bool,
        arrival: int = -1,
        models: frozenset[str] | None = None,
    ) -> None:
        self.key = key
        self.tenant = tenant
        self.demand = demand
        self.count = count
        self.priority = priority
        self.order = order
        self.since = since
        self.front = front
        self.arrival = arrival
        """Its place in submission order, kept when it is given back."""
        self.models = models
        """The GPU models its devices must be (``gpu_model``; ``None``: any)."""

    def __repr__(self) -> str:
        return (
            f"Waiting(key={self.key!r}, tenant={self.tenant}, demand={self.demand},"
            f" count={self.count}, priority={self.priority}, order={self.order},"
            f" since={self.since}, front={self.front})"
        )


LineEntry = tuple[float, int, float, int, int, Waiting]
"""One place in a tenant's line (:attr:`TenantState.line`): its key, then the waiting work."""

WORK: Final = 5
"""Where a :data:`LineEntry` holds its :class:`Waiting` (after the five numbers of its key)."""


class Running:
    """Instances admitted together: the handle the caller releases or stops.

    A pass offers a task to the caller's placer as the run it would become:
    ``count`` is then how many instances it may start, and becomes how many
    the placer started (one object an offer, kept if taken). Compared by
    identity."""

    def __init__(
        self,
        key: Hashable,
        tenant: int,
        demand: tuple[float, ...],
        count: int,
        priority: int,
        order: float,
        since: float,
        started: float,
        seq: int,
        arrival: int,
        models: frozenset[str] | None = None,
    ) -> None:
        self.key = key
        self.tenant = tenant
        self.demand = demand
        self.count = count
        self.priority = priority
        self.order = order
        self.since = since
        self.started = started
        self.seq = seq
        self.arrival = arrival
        self.models = models
        """The GPU models its devices must be (kept for its way back to its line)."""

    def __repr__(self) -> str:
        return (
            f"Running(key={self.key!r}, tenant={self.tenant}, demand={self.demand},"
            f" count={self.count}, priority={self.priority}, started={self.started})"
        )


@dataclass(frozen=True, slots=True)
class Victim:
    """``count`` instances of ``run`` to stop: they are already back in line.

    ``nodes`` names the node of each instance to stop (one entry per
    instance) when reclaim chose them node by node; empty: any ``count``.
    """

    run: Running
    count: int
    nodes: tuple[Hashable, ...] = ()


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
    line: list[LineEntry] = field(default_factory=list)
    """A heap of its waiting work: (given back 0 or 1, aging step − priority,
    order, arrival, tie-breaker, the entry) — flat, so that the heap's
    comparisons read numbers, not tuples of them."""
    claim_since: float | None = None
    unplaced: bool = False
    """The placer refused its last offer: what the pool has free does not fit."""
    blocked: tuple[float, ...] | None = None
    """The least free room its refused tasks need (see ``_serve``)."""


def dominant(usage: Sequence[float], pool: Sequence[float]) -> float:
    return max((u / p for u, p in zip(usage, pool, strict=True) if p > 0), default=0.0)


__all__ = [
    "EPSILON",
    "WORK",
    "LineEntry",
    "Running",
    "TenantState",
    "Victim",
    "Waiting",
    "dominant",
]
