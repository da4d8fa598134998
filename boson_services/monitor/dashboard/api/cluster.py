"""``GET /api/cluster`` (totals) and ``GET /api/nodes`` (a filtered, sorted page)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from boson_services.monitor.dashboard.present import ClusterTotals, NodeSort, NodesPage, NodeStatus
from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.shared import JsonAnswer
from boson_services.monitor.dashboard.source import DashboardSource

MAX_PAGE = 500


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
    async def nodes(
        status: Annotated[NodeStatus | None, Query(description="only nodes in this state")] = None,
        search: Annotated[str, Query(max_length=64, description="node id contains")] = "",
        sort: Annotated[NodeSort, Query(description="busiest first, or by id")] = "id",
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> JsonAnswer:
        def page() -> NodesPage:
            return source.nodes(status=status, search=search, sort=sort, offset=offset, limit=limit)

        return await source.shared_json(("nodes", status, search, sort, offset, limit), page)


__all__ = ["MAX_PAGE", "add_routes"]
