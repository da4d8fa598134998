"""``GET /api/alerts`` and ``POST /api/alerts/{alert_id}/acknowledge`` (an action)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from boson_services.monitor.dashboard.present import Out
from boson_services.monitor.dashboard.security import Guard, ProblemError
from boson_services.monitor.dashboard.shared import JsonAnswer
from boson_services.monitor.dashboard.source import AlertsOut, DashboardSource

AlertId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="an alert's id")]


class Acknowledgement(Out):
    note: Annotated[str, Body(max_length=500)] = ""


class Acknowledged(Out):
    alert_id: str
    acknowledged: bool


def add_routes(api: APIRouter, source: DashboardSource, guard: Guard) -> None:
    @api.get(
        "/api/alerts",
        response_model=AlertsOut,
        tags=["alerts"],
        summary="What is wrong now, and the alerts raised last",
    )
    async def alerts() -> JsonAnswer:
        return await source.shared_json(("alerts", source.acknowledgements), source.alerts)

    @api.post(
        "/api/alerts/{alert_id}/acknowledge",
        response_model=Acknowledged,
        tags=["alerts"],
        dependencies=[Depends(guard.act)],
        summary="Mark a recent alert as seen (needs the API token)",
    )
    async def acknowledge(alert_id: AlertId, body: Acknowledgement | None = None) -> Acknowledged:
        if not source.acknowledge(alert_id):
            raise ProblemError(404, f"no recent alert {alert_id}")
        return Acknowledged(alert_id=alert_id, acknowledged=True)


__all__ = ["Acknowledged", "Acknowledgement", "add_routes"]
