"""The dashboard's JSON API under ``/api``, one module per subject.

``cluster`` (nodes, totals), ``alerts`` (active conditions, recent alerts and
their acknowledgement — the first action, guarded like every action will be)
and ``throughput`` (the last hour) answer now; ``events`` is the live stream
the pages listen to. The task record's subjects slot in the same way, as
``tasks`` (the list and one task, with its cancel action) and ``tenants``:
a module with a ``router(source, guard)`` added to :data:`SUBJECTS`, and a
feature name in :data:`FEATURES` so the page shows its navigation entry.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from boson_services.monitor.dashboard.api import alerts, cluster, events, throughput
from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.source import DashboardSource

SUBJECTS: tuple[Callable[[DashboardSource, Guard], APIRouter], ...] = (
    cluster.router,
    alerts.router,
    throughput.router,
    events.router,
)
"""Every API subject, in the order the OpenAPI document lists them."""

FEATURES: frozenset[str] = frozenset({"cluster", "alerts", "throughput"})
"""The pages the navigation shows; ``tasks``, ``tenants`` join with their subjects."""


def api_router(source: DashboardSource, guard: Guard) -> APIRouter:
    api = APIRouter(prefix="/api")
    for subject in SUBJECTS:
        api.include_router(subject(source, guard))
    return api


__all__ = ["FEATURES", "SUBJECTS", "api_router"]
