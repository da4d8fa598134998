"""The dashboard's JSON API under ``/api``, one module per subject.

``cluster`` (nodes, totals), ``alerts`` (active conditions, recent alerts and
their acknowledgement, an action), ``throughput`` (the last hour), ``tasks``
(the record's list, one task, and cancel, an action); ``events`` is the live
stream the pages listen to; ``tenants`` (usage against quota, from the
balancer's report). A subject is a module with a ``router(source, guard)`` in
:data:`SUBJECTS`, and a feature name in :func:`features` for its page.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from boson_services.monitor.dashboard.api import (
    alerts,
    cluster,
    events,
    tasks,
    tenants,
    throughput,
)
from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.source import DashboardSource

SUBJECTS: tuple[Callable[[DashboardSource, Guard], APIRouter], ...] = (
    cluster.router,
    tenants.router,
    alerts.router,
    throughput.router,
    tasks.router,
    events.router,
)
"""Every API subject, in the order the OpenAPI document lists them."""

FEATURES: frozenset[str] = frozenset({"cluster", "tenants", "alerts", "throughput"})
"""The pages every dashboard shows; ``tasks`` joins with a task record."""


def features(source: DashboardSource) -> frozenset[str]:
    """The pages this dashboard shows."""
    return FEATURES | ({"tasks"} if source.tasks is not None else frozenset())


def api_router(source: DashboardSource, guard: Guard) -> APIRouter:
    api = APIRouter(prefix="/api")
    for subject in SUBJECTS:
        api.include_router(subject(source, guard))
    return api


__all__ = ["FEATURES", "SUBJECTS", "api_router", "features"]
