"""The tenants as the dashboard shows them: usage against quota, borrowed, pending.

The active balancer holds admission and reports it (a
:class:`~boson_shared.contract.tenants_report.TenantsReport`, kind
``tenants.report``); the monitor keeps the latest in its view and the
dashboard shapes it here, per tenant and per resource. Before the first
report arrives — or on a pool without a tenants file, where everything runs
as the one ``default`` tenant — the page shows that tenant alone, marked as
not reported yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import Field

from boson_services.monitor.dashboard.present import Out, share
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage
from boson_shared.scheduling.tenants import DEFAULT_TENANT, RESOURCES


class TenantResource(Out):
    """One resource of one tenant, in the units of task requests."""

    quota: float
    guarantee: Annotated[
        float | None, Field(description="the quota shrunk to the live pool; none: not governed")
    ]
    borrowing_limit: Annotated[float | None, Field(description="none: may borrow without limit")]
    usage: float
    borrowed: Annotated[float, Field(description="usage beyond the guarantee")]
    pending: Annotated[float, Field(description="what its waiting tasks ask for")]
    used_of_quota: Annotated[float | None, Field(description="usage / quota; none without quota")]


class TenantOut(Out):
    name: str
    weight: float
    may_preempt: bool
    waiting: int
    running: int
    preempted: int
    dominant_share: float
    borrowing: Annotated[bool, Field(description="uses more than its guarantee of a resource")]
    resources: dict[str, TenantResource]


class TenantsOut(Out):
    """The pool and a page of its tenants, as the active balancer last reported them."""

    reported: Annotated[bool, Field(description="false: no report from a balancer yet")]
    reported_at: float | None
    balancer_id: str | None
    pool: dict[str, float]
    grace_s: float
    total: Annotated[int, Field(description="tenants matching the filter")]
    offset: int
    limit: int
    tenants: list[TenantOut]


NO_REPORT = TenantsReport(
    balancer_id="none",
    seq=0,
    reported_at=0.0,
    tenants=(TenantUsage(name=DEFAULT_TENANT, weight=1.0, may_preempt=False),),
)
"""What the page shows before any report: the one ``default`` tenant, nothing measured."""


def resource_names(report: TenantsReport) -> list[str]:
    """The resources the report speaks of, the usual three first."""
    named: set[str] = set(report.pool)
    for tenant in report.tenants:
        named.update(tenant.quota, tenant.usage, tenant.pending)
    return [*RESOURCES, *sorted(named - set(RESOURCES))]


def tenant_out(tenant: TenantUsage, resources: Iterable[str]) -> TenantOut:
    def amount(amounts: Mapping[str, float], name: str) -> float:
        return float(amounts.get(name, 0.0))

    shaped = {
        name: TenantResource(
            quota=amount(tenant.quota, name),
            guarantee=tenant.guarantee.get(name),
            borrowing_limit=tenant.borrowing_limit.get(name),
            usage=amount(tenant.usage, name),
            borrowed=amount(tenant.borrowed, name),
            pending=amount(tenant.pending, name),
            used_of_quota=share(amount(tenant.usage, name), amount(tenant.quota, name))
            if amount(tenant.quota, name) > 0
            else None,
        )
        for name in resources
    }
    return TenantOut(
        name=tenant.name,
        weight=tenant.weight,
        may_preempt=tenant.may_preempt,
        waiting=tenant.waiting,
        running=tenant.running,
        preempted=tenant.preempted,
        dominant_share=tenant.dominant_share,
        borrowing=any(line.borrowed > 0 for line in shaped.values()),
        resources=shaped,
    )


def tenants_page(
    report: TenantsReport | None, *, search: str = "", offset: int = 0, limit: int = 50
) -> TenantsOut:
    """A page of tenants by name (``search``: name contains), with the pool they share."""
    shown = report if report is not None else NO_REPORT
    resources = resource_names(shown)
    chosen = sorted(
        (tenant for tenant in shown.tenants if search in tenant.name), key=lambda t: t.name
    )
    return TenantsOut(
        reported=report is not None,
        reported_at=report.reported_at if report is not None else None,
        balancer_id=report.balancer_id if report is not None else None,
        pool={name: float(shown.pool.get(name, 0.0)) for name in resources},
        grace_s=shown.grace_s,
        total=len(chosen),
        offset=offset,
        limit=limit,
        tenants=[tenant_out(tenant, resources) for tenant in chosen[offset : offset + limit]],
    )


def find_tenant(report: TenantsReport | None, name: str) -> TenantOut | None:
    shown = report if report is not None else NO_REPORT
    for tenant in shown.tenants:
        if tenant.name == name:
            return tenant_out(tenant, resource_names(shown))
    return None


__all__ = [
    "NO_REPORT",
    "TenantOut",
    "TenantResource",
    "TenantsOut",
    "find_tenant",
    "resource_names",
    "tenant_out",
    "tenants_page",
]
