"""Per-tenant gauges, set from the active balancer's :class:`TenantsReport`.

Each report replaces the previous one whole: a tenant (or a resource) the
new report no longer names loses its series instead of keeping its last
value. Amounts are in the units of task requests, by resource as the
tenants file names them; a resource a tenant's ``quota``, ``usage``,
``borrowed`` or ``pending`` does not name is 0 there, while ``guarantee``
and ``borrowing_limit`` are exported only where they are set (a resource
without a guarantee is not governed; one without a limit may be borrowed
without limit).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

from boson_shared.contract.tenants_report import TenantsReport, TenantUsage

AMOUNTS_ZERO_WHEN_UNNAMED = ("quota", "usage", "borrowed", "pending")
AMOUNTS_ONLY_WHEN_SET = ("guarantee", "borrowing_limit")


class TenantGauges:
    """The ``boson_tenant_*`` families, in the monitor's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        per_resource = ["tenant", "resource"]
        self.amounts: dict[str, Gauge] = {
            "quota": Gauge(
                "boson_tenant_quota_units",
                "The tenant's nominal quota (tenants file)",
                per_resource,
                registry=r,
            ),
            "guarantee": Gauge(
                "boson_tenant_guarantee_units",
                "Its quota shrunk with the live pool: what it may always use",
                per_resource,
                registry=r,
            ),
            "borrowing_limit": Gauge(
                "boson_tenant_borrowing_limit_units",
                "How much it may use beyond its guarantee (absent: no limit)",
                per_resource,
                registry=r,
            ),
            "usage": Gauge(
                "boson_tenant_usage_units",
                "What its running tasks hold",
                per_resource,
                registry=r,
            ),
            "borrowed": Gauge(
                "boson_tenant_borrowed_units",
                "Its usage beyond its guarantee",
                per_resource,
                registry=r,
            ),
            "pending": Gauge(
                "boson_tenant_pending_units",
                "What its tasks waiting for admission ask for",
                per_resource,
                registry=r,
            ),
        }
        self.counts: dict[str, Gauge] = {
            "waiting": Gauge(
                "boson_tenant_waiting_tasks",
                "Its tasks waiting for admission",
                ["tenant"],
                registry=r,
            ),
            "running": Gauge(
                "boson_tenant_running_tasks",
                "Its tasks admitted and not finished",
                ["tenant"],
                registry=r,
            ),
            "preempted": Gauge(
                "boson_tenant_preempted_tasks",
                "Its tasks preempted since the reporting balancer started",
                ["tenant"],
                registry=r,
            ),
        }
        self.weight = Gauge(
            "boson_tenant_weight", "Its weight in the fair share", ["tenant"], registry=r
        )
        self.dominant_share = Gauge(
            "boson_tenant_dominant_share",
            "The largest fraction of the pool it uses of any resource",
            ["tenant"],
            registry=r,
        )
        self.pool = Gauge(
            "boson_tenants_pool_units",
            "The live pool's capacity, as the balancer admits against it",
            ["resource"],
            registry=r,
        )
        self.reported_at = Gauge(
            "boson_tenants_report_timestamp_seconds",
            "When the balancer made the latest tenants report (epoch seconds)",
            registry=r,
        )
        self._shown: dict[Gauge, set[tuple[str, ...]]] = {}

    def observe(self, report: TenantsReport) -> None:
        """Show ``report``: set every series it names, remove those it no longer does."""
        shown: dict[Gauge, dict[tuple[str, ...], float]] = {}

        def put(gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
            shown.setdefault(gauge, {})[labels] = value

        resources = sorted(report.pool)
        for resource in resources:
            put(self.pool, (resource,), report.pool[resource])
        for tenant in report.tenants:
            named = set(resources).union(*(_amounts(tenant, a) for a in self.amounts))
            for name, gauge in self.amounts.items():
                amounts = _amounts(tenant, name)
                for resource in sorted(named):
                    if resource in amounts or name in AMOUNTS_ZERO_WHEN_UNNAMED:
                        put(gauge, (tenant.name, resource), amounts.get(resource, 0.0))
            put(self.counts["waiting"], (tenant.name,), tenant.waiting)
            put(self.counts["running"], (tenant.name,), tenant.running)
            put(self.counts["preempted"], (tenant.name,), tenant.preempted)
            put(self.weight, (tenant.name,), tenant.weight)
            put(self.dominant_share, (tenant.name,), tenant.dominant_share)
        for gauge, stale in self._shown.items():
            for labels in stale - set(shown.get(gauge, {})):
                gauge.remove(*labels)
        for gauge, values in shown.items():
            for labels, value in values.items():
                gauge.labels(*labels).set(value)
        self._shown = {gauge: set(values) for gauge, values in shown.items()}
        self.reported_at.set(report.reported_at)


def _amounts(tenant: TenantUsage, name: str) -> Mapping[str, float]:
    amounts: Mapping[str, float] = getattr(tenant, name)
    return amounts


__all__ = ["TenantGauges"]
