"""The tenants' share of the pool over time, in the task record.

The active balancer reports every few seconds how each tenant stands
(:class:`~boson_shared.contract.tenants_report.TenantsReport`); the record
keeps one sample per tenant per *slot* of ``slot_s`` seconds: the first
report made within the slot that a monitor writes. The slot's start and the
tenant are the row's key and the insert skips a key already stored, so
every monitor may write what it takes — competing monitors, or a report
seen twice, never store a sample twice — and the record grows by one row
per tenant per slot whatever the report rate. Samples expire with the
record's retention (:meth:`RecordStore.expire`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from boson_shared.contract.messages import RECORD_QUERY_MAX_LIMIT
from boson_shared.contract.tenants_report import TenantSample, TenantsReport
from boson_shared.errors import InvalidQueryError
from boson_shared.record.schema import tenant_samples
from boson_shared.record.store import RecordStore

AMOUNTS = ("quota", "guarantee", "borrowing_limit", "usage", "borrowed", "pending")
COUNTS = ("waiting", "running", "preempted")


@dataclass(frozen=True)
class SampleQuery:
    """Samples newest first: of one tenant (None: all), made in [since, until)."""

    tenant: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= RECORD_QUERY_MAX_LIMIT:
            raise InvalidQueryError(f"limit must be 1..{RECORD_QUERY_MAX_LIMIT}, not {self.limit}")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidQueryError("since is after until")


def slot_of(at: float, slot_s: float) -> float:
    """The start of the slot of ``slot_s`` seconds that ``at`` falls in."""
    return math.floor(at / slot_s) * slot_s


def sample_rows(report: TenantsReport, *, slot_s: float, ttl_s: float) -> list[dict[str, Any]]:
    """The rows ``report`` makes: one per tenant, keyed by its slot."""
    slot_at = slot_of(report.reported_at, slot_s)
    rows = []
    for tenant in report.tenants:
        row: dict[str, Any] = {
            "slot_at": slot_at,
            "tenant": tenant.name,
            "at": report.reported_at,
            "balancer_id": report.balancer_id,
            "seq": report.seq,
            "weight": tenant.weight,
            "may_preempt": tenant.may_preempt,
            "pool": dict(report.pool),
            "dominant_share": tenant.dominant_share,
            "expires_at": report.reported_at + ttl_s,
        }
        for name in AMOUNTS:
            row[name] = dict(getattr(tenant, name))
        for name in COUNTS:
            row[name] = getattr(tenant, name)
        rows.append(row)
    return rows


async def record_report(store: RecordStore, report: TenantsReport, *, slot_s: float) -> int:
    """Store ``report``'s samples unless its slot has them; how many were new."""
    rows = sample_rows(report, slot_s=slot_s, ttl_s=store.ttl_s)
    if not rows:
        return 0
    statement = (
        store._insert(tenant_samples)
        .on_conflict_do_nothing(index_elements=["slot_at", "tenant"])
        .returning(tenant_samples.c.tenant)
    )
    async with store._guard("recording tenant samples"), store.engine.begin() as conn:
        result = await conn.execute(statement, rows)
        return len(result.all())


async def read_samples(store: RecordStore, query: SampleQuery) -> tuple[TenantSample, ...]:
    """The samples ``query`` asks for, newest first (then by tenant)."""
    statement = select(tenant_samples)
    if query.tenant is not None:
        statement = statement.where(tenant_samples.c.tenant == query.tenant)
    if query.since is not None:
        statement = statement.where(tenant_samples.c.at >= query.since)
    if query.until is not None:
        statement = statement.where(tenant_samples.c.at < query.until)
    statement = statement.order_by(tenant_samples.c.slot_at.desc(), tenant_samples.c.tenant).limit(
        query.limit
    )
    async with store._guard("reading tenant samples"):
        rows = [dict(row._mapping) for row in await store.rows(statement)]
    return tuple(_sample(row) for row in rows)


def _sample(row: dict[str, Any]) -> TenantSample:
    return TenantSample(
        name=row["tenant"],
        at=row["at"],
        balancer_id=row["balancer_id"],
        seq=row["seq"],
        weight=row["weight"],
        may_preempt=row["may_preempt"],
        pool=row["pool"],
        dominant_share=row["dominant_share"],
        **{name: row[name] for name in AMOUNTS},
        **{name: row[name] for name in COUNTS},
    )


__all__ = ["SampleQuery", "read_samples", "record_report", "sample_rows", "slot_of"]
