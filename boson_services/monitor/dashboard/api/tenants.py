"""``GET /api/tenants`` (the pool and a page of tenants) and ``GET /api/tenants/{name}``.

Both answer from the active balancer's latest ``tenants.report`` as the
monitor holds it; before any report, the one ``default`` tenant, marked
``reported: false``. An unknown tenant is a 404, a bad filter a 400.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from boson_services.monitor.dashboard.security import Guard, ProblemError
from boson_services.monitor.dashboard.shared import JsonAnswer
from boson_services.monitor.dashboard.source import DashboardSource
from boson_services.monitor.dashboard.tenants import (
    TenantOut,
    TenantsOut,
    find_tenant,
    tenants_page,
)

MAX_PAGE = 500
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""A tenant's name, as the tenants file and the wire allow it."""


class TenantFilters(BaseModel):
    """The query of ``GET /api/tenants``, validated as one model (one pass, not one per field)."""

    search: Annotated[
        str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.-]*$", description="name contains")
    ] = ""
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50


def add_routes(api: APIRouter, source: DashboardSource, guard: Guard) -> None:
    @api.get(
        "/api/tenants",
        response_model=TenantsOut,
        tags=["tenants"],
        summary="Every tenant's usage against its quota, borrowed and pending, by name",
    )
    async def tenants(filters: Annotated[TenantFilters, Query()]) -> JsonAnswer:
        search, offset, limit = filters.search, filters.offset, filters.limit

        def page() -> TenantsOut:
            return tenants_page(source.tenants(), search=search, offset=offset, limit=limit)

        return await source.shared_json(("tenants", search, offset, limit), page)

    @api.get(
        "/api/tenants/{name}", response_model=TenantOut, tags=["tenants"], summary="One tenant"
    )
    async def tenant(
        name: Annotated[str, Path(pattern=NAME_PATTERN, description="the tenant's name")],
    ) -> TenantOut:
        found = find_tenant(source.tenants(), name)
        if found is None:
            raise ProblemError(404, f"no tenant {name} in the balancer's report")
        return found


__all__ = ["MAX_PAGE", "TenantFilters", "add_routes"]
