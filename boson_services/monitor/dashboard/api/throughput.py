"""``GET /api/throughput``: tasks/s and submit→result latency over the last hour."""

from __future__ import annotations

from fastapi import APIRouter

from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.shared import JsonAnswer
from boson_services.monitor.dashboard.source import DashboardSource, ThroughputOut


def add_routes(api: APIRouter, source: DashboardSource, guard: Guard) -> None:
    @api.get(
        "/api/throughput",
        response_model=ThroughputOut,
        tags=["throughput"],
        summary="The last hour, sampled",
    )
    async def throughput() -> JsonAnswer:
        return await source.shared_json(("throughput",), source.throughput)


__all__ = ["add_routes"]
