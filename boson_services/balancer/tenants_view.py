"""The balancer's :class:`~boson_shared.contract.tenants_report.TenantsReport`.

With tenants, every figure comes from the admission gate. Without a tenants
file the one ``default`` tenant owns the pool, ungoverned: its usage is what
the dispatched tasks hold, its waiting tasks what the dispatcher holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.base import DEFAULT_TENANT
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage
from boson_shared.scheduling.admission_state import dominant
from boson_shared.scheduling.tenants import RESOURCES


def amounts(values: Iterable[float], *, leave_out_unbounded: bool = False) -> dict[str, float]:
    """Per resource name (sums of floats may dip a hair below zero: clamped).

    With ``leave_out_unbounded`` an amount that is not finite (``inf``: no
    bound) is left out rather than reported.
    """
    return {
        r: max(0.0, float(v))
        for r, v in zip(RESOURCES, values, strict=True)
        if not leave_out_unbounded or math.isfinite(v)
    }


def tenants_report(
    gate: AdmissionGate | None,
    dispatcher: Dispatcher,
    *,
    balancer_id: str,
    seq: int,
    grace_s: float,
) -> TenantsReport:
    pool = [float(x) for x in dispatcher.pool()]
    if gate is None:
        usage = [float(x) for x in dispatcher.in_flight_demand()]
        only = TenantUsage(
            name=DEFAULT_TENANT,
            weight=1.0,
            may_preempt=False,
            usage=amounts(usage),
            borrowed=amounts([0.0] * len(RESOURCES)),
            pending=amounts(sum((h.demand for h in dispatcher.held.values()), np.zeros(3))),
            dominant_share=dominant(usage, pool),
            waiting=len(dispatcher.held),
            running=len(dispatcher.where),
        )
        return TenantsReport(
            balancer_id=balancer_id, seq=seq, pool=amounts(pool), grace_s=0.0, tenants=(only,)
        )
    admission = gate.admission
    tenants = []
    for name, waiting, running in gate.counts():
        spec = gate.config.tenants[name]
        limit = spec.borrowing_vector()
        tenants.append(
            TenantUsage(
                name=name,
                weight=spec.weight,
                may_preempt=spec.may_preempt,
                quota={r: float(v) for r, v in spec.quota.items()},
                guarantee=amounts(admission.guarantee(name), leave_out_unbounded=True),
                borrowing_limit=amounts(limit, leave_out_unbounded=True),
                usage=amounts(admission.usage(name)),
                borrowed=amounts(admission.borrowed(name)),
                pending=amounts(admission.pending(name)),
                dominant_share=admission.dominant_share(name),
                waiting=waiting,
                running=running,
                preempted=gate.preempted[name],
            )
        )
    return TenantsReport(
        balancer_id=balancer_id,
        seq=seq,
        pool=amounts(pool),
        grace_s=grace_s,
        tenants=tuple(tenants),
    )


__all__ = ["amounts", "tenants_report"]
