"""The dashboard's JSON API under ``/api``, one module per subject.

``cluster`` (nodes, totals), ``alerts`` (active conditions, recent alerts and
their acknowledgement, an action), ``throughput`` (the last hour), ``tasks``
(the record's list, one task, and cancel, an action); ``events`` is the live
stream the pages listen to; ``tenants`` (usage against quota, from the
balancer's report). A subject is a module with an ``add_routes(api, source,
guard)`` in :data:`SUBJECTS`, which adds its routes (full paths, under
``/api``) to the app's own router, and a feature name in :func:`features`
for its page. Reads need no guard of their own: the app's
:class:`~boson_services.monitor.dashboard.security.Gate` checks the read
token once per ``/api`` read; actions depend on ``guard.act``.
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

SUBJECTS: tuple[Callable[[APIRouter, DashboardSource, Guard], None], ...] = (
    cluster.add_routes,
    tenants.add_routes,
    alerts.add_routes,
    throughput.add_routes,
    tasks.add_routes,
    events.add_routes,
)
"""Every API subject, in the order the OpenAPI document lists them."""

FEATURES: frozenset[str] = frozenset({"cluster", "tenants", "alerts", "throughput"})
"""The pages every dashboard shows; ``tasks`` joins with a task record."""


def features(source: DashboardSource) -> frozenset[str]:
    """The pages this dashboard shows."""
    return FEATURES | ({"tasks"} if source.tasks is not None else frozenset())


def add_api(app: APIRouter, source: DashboardSource, guard: Guard) -> None:
    """Every subject's routes on ``app``, in :data:`SUBJECTS` order."""
    for subject in SUBJECTS:
        subject(app, source, guard)


__all__ = ["FEATURES", "SUBJECTS", "add_api", "features"]
