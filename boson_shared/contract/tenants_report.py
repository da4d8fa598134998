"""The balancer's report of how the tenants share the pool (``tenants.report``).

The active balancer holds admission (docs/scheduling.md#tenants) and so is
the one that knows, per tenant, what it is guaranteed, uses, borrows and
waits for. It publishes this report on the events exchange periodically
and whenever admission changes; the monitor turns it into gauges and
``boson tenants`` shows it. Resources are keyed by the names the tenants
file uses (``cpu``, ``memory``, ``gpu``), in the units of task requests.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import Field, StringConstraints

from boson_shared.contract.base import (
    Count,
    Identifier,
    Message,
    Model,
    NonNegative,
    TenantName,
    Timestamp,
    now,
)

ResourceName: TypeAlias = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""A resource as the tenants file names it (``cpu``, ``memory``, ``gpu``)."""

Amounts: TypeAlias = dict[ResourceName, NonNegative]
"""An amount per resource, in the units of task requests."""

MAX_REPORTED_TENANTS = 10_000


class TenantUsage(Model):
    """One tenant's terms and where it stands now."""

    name: TenantName
    weight: Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]
    may_preempt: bool
    quota: Amounts = Field(
        default_factory=dict, description="Nominal quota; a resource not named: 0."
    )
    guarantee: Amounts = Field(
        default_factory=dict,
        description="The quota shrunk with the live pool; a resource not named is not "
        "governed (no tenant has a quota of it): only the pool limits it.",
    )
    borrowing_limit: Amounts = Field(
        default_factory=dict,
        description="How much it may use beyond its guarantee; a resource not named: no limit.",
    )
    usage: Amounts = Field(default_factory=dict, description="What its running tasks hold.")
    borrowed: Amounts = Field(
        default_factory=dict, description="Usage beyond its guarantee (0 where it has none)."
    )
    pending: Amounts = Field(default_factory=dict, description="What its waiting tasks ask for.")
    dominant_share: NonNegative = Field(
        default=0.0, description="The largest fraction of the pool it uses of any resource."
    )
    waiting: Count = 0
    """Its tasks waiting for admission."""
    running: Count = 0
    """Its tasks admitted and not finished."""
    preempted: Count = 0
    """Its tasks preempted since the reporting balancer started."""


class TenantsReport(Message):
    """The pool and every tenant's share of it, from the active balancer."""

    kind: Literal["tenants.report"] = "tenants.report"
    balancer_id: Identifier
    seq: Count
    """Increases with each report of one balancer instance."""
    reported_at: Timestamp = Field(default_factory=now)
    pool: Amounts = Field(
        default_factory=dict, description="The live pool's total capacity per resource."
    )
    grace_s: NonNegative = Field(
        default=0.0,
        description="Seconds a tenant's claim on its quota waits before borrowed work "
        "is preempted.",
    )
    tenants: Annotated[tuple[TenantUsage, ...], Field(max_length=MAX_REPORTED_TENANTS)] = ()


class TenantSample(TenantUsage):
    """One tenant as one report showed it, kept in the task record over time
    (one per tenant per sampling slot: ``boson tenants --history``)."""

    at: Timestamp
    """When the balancer made the report."""
    balancer_id: Identifier
    seq: Count
    pool: Amounts = Field(default_factory=dict)


__all__ = [
    "MAX_REPORTED_TENANTS",
    "Amounts",
    "ResourceName",
    "TenantSample",
    "TenantUsage",
    "TenantsReport",
]
