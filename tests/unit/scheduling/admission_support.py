"""What the admission property tests share: tenant configurations and the preemption rule."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from boson_shared.scheduling.admission import EPSILON
from boson_shared.scheduling.tenants import TenantsConfig, TenantSpec


def tenants_configs(most: int) -> st.SearchStrategy[TenantsConfig]:
    """One to four tenants with CPU/memory quotas and borrowing limits of at most `most` each."""
    amount = st.integers(0, most)
    tenant = st.builds(
        lambda quota, limit, weight, preempt: TenantSpec(
            quota={"cpu": quota[0], "memory": quota[1]},
            borrowing_limit=None if limit is None else {"cpu": limit[0], "memory": limit[1]},
            weight=weight,
            may_preempt=preempt,
        ),
        st.tuples(amount, amount),
        st.none() | st.tuples(amount, amount),
        st.integers(1, 4),
        st.booleans(),
    )
    return st.lists(tenant, min_size=1, max_size=4).map(
        lambda specs: TenantsConfig(tenants={f"t{i}": s for i, s in enumerate(specs)})
    )


def stop_one_above_guarantee(
    demand: Sequence[float], usage: list[float], guarantee: Sequence[float]
) -> None:
    """Check one instance's tenant is above its guarantee on a resource the instance uses,
    then take the instance's demand off the tenant's usage."""
    assert any(d > 0 and u > g + EPSILON for d, u, g in zip(demand, usage, guarantee, strict=False))
    for r, d in enumerate(demand):
        usage[r] -= d
