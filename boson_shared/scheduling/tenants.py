"""Tenants: who shares the pool, and on what terms (the ``BOSON_TENANTS_FILE``).

A tenant is a team or an account. The file declares, per tenant, a nominal
quota per resource in the units of task requests (cores, the nodes' memory
unit, GPUs), a weight for fair sharing, a borrowing limit on top of the
quota, and whether its work may preempt borrowed work to take its quota
back. Quotas are absolute, as in Kueue; :func:`guarantees` shrinks them in
proportion when the live pool is smaller than their sum.

No file means one ``default`` tenant with no quota and no borrowing limit:
alone in the pool it is admitted whenever the pool has room, which is
Boson's behaviour without tenants.

The file is TOML::

    [tenants.research]
    weight = 2
    may_preempt = true
    quota = { cpu = 64, memory = 256 }
    borrowing_limit = { cpu = 32 }

A resource missing from ``quota`` has quota 0; one missing from
``borrowing_limit`` (or no ``borrowing_limit`` at all) may be borrowed
without limit.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boson_shared.contract.base import (
    DEFAULT_TENANT,
    PRIORITY_MAX,
    PRIORITY_MIN,
    TenantName,
)
from boson_shared.errors import ConfigError

RESOURCES: tuple[str, ...] = ("cpu", "memory", "gpu")
"""The resources a quota can name, in the order of every vector here."""

DEFAULT_PRIORITY = 0

Resource = Literal["cpu", "memory", "gpu"]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class TenantSpec(BaseModel):
    """One tenant's terms, as the file states them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quota: dict[Resource, Amount] = Field(default_factory=dict)
    """Nominal quota per resource: what the tenant may always use."""
    weight: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    """Its weight in the fair share (a weighted dominant share is divided by it)."""
    borrowing_limit: dict[Resource, Amount] | None = None
    """How much it may use beyond its quota when others leave it idle; None:
    no limit on any resource."""
    may_preempt: bool = False
    """Whether its work may preempt borrowed work to reclaim its quota."""

    def quota_vector(self) -> tuple[float, ...]:
        return tuple(self.quota.get(r, 0.0) for r in RESOURCES)  # type: ignore[call-overload]

    def borrowing_vector(self) -> tuple[float, ...]:
        """Per resource; ``inf`` where there is no limit."""
        limits = self.borrowing_limit
        if limits is None:
            return tuple(math.inf for _ in RESOURCES)
        return tuple(limits.get(r, math.inf) for r in RESOURCES)  # type: ignore[call-overload]


class TenantsConfig(BaseModel):
    """Every tenant, by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenants: dict[TenantName, TenantSpec] = Field(min_length=1)

    @staticmethod
    def single() -> TenantsConfig:
        """The configuration without a file: ``default`` alone, unlimited."""
        return TenantsConfig(tenants={DEFAULT_TENANT: TenantSpec()})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.tenants)


def _key(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_tenants(text: str, source: str = "tenants file") -> TenantsConfig:
    """Parse and validate the TOML text; :class:`ConfigError` naming the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    try:
        return TenantsConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_key(first['loc'])}: {first['msg']}{more}") from e


def load_tenants(path: Path | None) -> TenantsConfig:
    """The tenants of ``path``, or :meth:`TenantsConfig.single` without one."""
    if path is None:
        return TenantsConfig.single()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"tenants file {path}: cannot read it: {e.strerror or e}") from e
    return parse_tenants(text, f"tenants file {path}")


def guarantees(quotas: Sequence[Sequence[float]], pool: Sequence[float]) -> list[tuple[float, ...]]:
    """Each tenant's guaranteed amount per resource, given the live pool.

    A quota is the guarantee while the pool holds every tenant's quota; when
    it holds less (nodes down), every quota of that resource shrinks by the
    same factor, pool ÷ Σ quotas, so guarantees never promise more than exists.
    """
    scale = []
    for r, capacity in enumerate(pool):
        total = sum(q[r] for q in quotas)
        scale.append(1.0 if total <= capacity or total <= 0 else capacity / total)
    return [tuple(q[r] * scale[r] for r in range(len(pool))) for q in quotas]


UNKNOWN_TENANT = "unknown-tenant"
"""The error type of a failed result whose task names a tenant the file does not declare."""
LISTED_TENANTS = 50
"""Known tenants an ``unknown-tenant`` failure names (the rest are counted)."""


def unknown_tenant_message(tenant: str, known: Collection[str]) -> str:
    """What a task naming an undeclared tenant is told: the tenant and the known ones.

    The scheduler and the balancer both refuse such a task; they say the same.
    """
    ordered = sorted(known)
    listing = ", ".join(ordered[:LISTED_TENANTS])
    if len(ordered) > LISTED_TENANTS:
        listing += f" (and {len(ordered) - LISTED_TENANTS} more)"
    return f"tenant {tenant!r} is not in the tenants file; the known tenants: {listing}"


def entitlements(config: TenantsConfig) -> Mapping[str, float]:
    """Each tenant's weight as a fraction of all weights."""
    total = sum(spec.weight for spec in config.tenants.values())
    return {name: spec.weight / total for name, spec in config.tenants.items()}


__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_TENANT",
    "LISTED_TENANTS",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "RESOURCES",
    "UNKNOWN_TENANT",
    "TenantName",
    "TenantSpec",
    "TenantsConfig",
    "entitlements",
    "guarantees",
    "load_tenants",
    "parse_tenants",
    "unknown_tenant_message",
]
