"""What every trace reader shares: column checks, cell parsing, task rows, sorted events.

A reader never drops a row silently: a cell that is not a finite number parses
to None and the reader counts the row in
:class:`~boson.simulation.trace_types.Skipped` under its reason; a file without
a required column is a :class:`TraceFormatError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from boson.simulation.trace_types import NodeEvents, Workload
from boson_shared.errors import ConfigError
from boson_shared.scheduling.tenants import DEFAULT_PRIORITY, DEFAULT_TENANT


class TraceFormatError(ConfigError):
    """A trace file lacks a required column or is not the format named."""


def require(header: Iterable[str] | None, needed: Iterable[str], what: str) -> None:
    """Refuse a file whose ``header`` lacks any of the ``needed`` columns."""
    have = set(header or ())
    missing = [c for c in needed if c not in have]
    if missing:
        raise TraceFormatError(f"{what}: missing column(s) {', '.join(missing)}")


def to_number(text: str | None) -> float | None:
    """Parse a number; None for an empty or malformed cell (the caller counts it)."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


class TaskRows:
    """Accumulates usable task rows; dense job indices in first-seen order."""

    def __init__(self) -> None:
        self.submit: list[float] = []
        self.duration: list[float] = []
        self.demand: list[tuple[float, float, float]] = []
        self.instances: list[int] = []
        self.job: list[int] = []
        self.tenant: list[str] = []
        self.priority: list[int] = []
        self._jobs: dict[str, int] = {}

    def add(
        self,
        submit: float,
        duration: float,
        demand: tuple[float, float, float],
        instances: int,
        job_key: str,
        tenant: str = DEFAULT_TENANT,
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        self.tenant.append(tenant)
        self.priority.append(priority)
        self.submit.append(submit)
        self.duration.append(duration)
        self.demand.append(demand)
        self.instances.append(instances)
        self.job.append(self._jobs.setdefault(job_key, len(self._jobs)))

    def build(self) -> Workload:
        demand = np.asarray(self.demand, np.float64).reshape(-1, 3)
        return Workload(
            submit=np.asarray(self.submit, np.float64),
            duration=np.asarray(self.duration, np.float64),
            demand=demand,
            instances=np.asarray(self.instances, np.int64),
            job=np.asarray(self.job, np.int64),
            job_names=tuple(self._jobs),
            tenant=tuple(self.tenant) if set(self.tenant) - {DEFAULT_TENANT} else (),
            priority=np.asarray(self.priority, np.int64) if any(self.priority) else None,
        )


def sorted_events(times: list[float], nodes: list[int], ups: list[bool]) -> NodeEvents:
    """Node events from parallel lists, sorted by time."""
    t = np.asarray(times, np.float64)
    # Stable on time so a down and an up at the same instant keep file order.
    order = np.argsort(t, kind="stable")
    return NodeEvents(
        t[order], np.asarray(nodes, np.int64)[order], np.asarray(ups, np.bool_)[order]
    )


__all__ = ["TaskRows", "TraceFormatError", "require", "sorted_events", "to_number"]
