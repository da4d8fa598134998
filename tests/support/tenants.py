"""Sample ``tenants.report`` messages, as the active balancer publishes them."""

from __future__ import annotations

from boson_shared.contract.tenants_report import TenantsReport, TenantUsage


def report(seq: int, *tenants: TenantUsage, balancer: str = "bal-1") -> TenantsReport:
    return TenantsReport(
        balancer_id=balancer,
        seq=seq,
        reported_at=1_000.0 + seq,
        pool={"cpu": 64.0, "memory": 256.0, "gpu": 4.0},
        grace_s=30.0,
        tenants=tenants,
    )


RESEARCH = TenantUsage(
    name="research",
    weight=2,
    may_preempt=True,
    quota={"cpu": 32.0, "memory": 128.0, "gpu": 4.0},
    guarantee={"cpu": 32.0, "memory": 128.0, "gpu": 2.0},
    borrowing_limit={"cpu": 16.0},
    usage={"cpu": 40.0, "memory": 64.0},
    borrowed={"cpu": 8.0},
    pending={"gpu": 1.0},
    dominant_share=0.625,
    waiting=3,
    running=10,
    preempted=1,
)
BATCH = TenantUsage(name="batch", weight=1, may_preempt=False, usage={"cpu": 4.0}, running=2)


__all__ = ["BATCH", "RESEARCH", "report"]
