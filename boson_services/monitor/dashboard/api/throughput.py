"""``GET /api/throughput``: tasks/s and submit→result latency over the last hour."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.shared import JsonAnswer
from boson_services.monitor.dashboard.source import DashboardSource, ThroughputOut


def router(source: DashboardSource, guard: Guard) -> APIRouter:
    api = APIRouter(tags=["throughput"], dependencies=[Depends(guard.read)])

    @api.get("/throughput", response_model=ThroughputOut, summary="The last hour, sampled")
    async def throughput() -> JsonAnswer:
        return await source.shared_json(("throughput",), source.throughput)

    return api


__all__ = ["router"]
