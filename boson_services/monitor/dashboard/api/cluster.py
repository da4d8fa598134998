"""``GET /api/cluster`` (totals) and ``GET /api/nodes`` (a filtered, sorted page)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from boson_services.monitor.dashboard.present import ClusterTotals, NodeSort, NodesPage, NodeStatus
from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.shared import JsonAnswer
from boson_services.monitor.dashboard.source import DashboardSource

MAX_PAGE = 500


class NodeFilters(BaseModel):
    """The query of ``GET /api/nodes``, validated as one model (one pass, not one per field)."""

    status: Annotated[NodeStatus | None, Field(description="only nodes in this state")] = None
    search: Annotated[str, Field(max_length=64, description="node id contains")] = ""
    sort: Annotated[NodeSort, Field(description="busiest first, or by id")] = "id"
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50


def add_routes(api: APIRouter, source: DashboardSource, guard: Guard) -> None:
    @api.get(
        "/api/cluster",
        response_model=ClusterTotals,
        tags=["cluster"],
        summary="Totals of the whole cluster",
    )
    async def cluster() -> JsonAnswer:
        return await source.shared_json(("cluster",), source.totals)

    @api.get("/api/nodes", response_model=NodesPage, tags=["cluster"], summary="One page of nodes")
    async def nodes(filters: Annotated[NodeFilters, Query()]) -> JsonAnswer:
        status, search, sort = filters.status, filters.search, filters.sort
        offset, limit = filters.offset, filters.limit

        def page() -> NodesPage:
            return source.nodes(status=status, search=search, sort=sort, offset=offset, limit=limit)

        return await source.shared_json(("nodes", status, search, sort, offset, limit), page)


__all__ = ["MAX_PAGE", "NodeFilters", "add_routes"]
