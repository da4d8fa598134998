"""The dashboard's app in process over a monitor's handlers: for API tests and the benchmark."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from boson_services.monitor.dashboard.actions import Canceller
from boson_services.monitor.dashboard.app import build_app
from boson_services.monitor.dashboard.history import History
from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.source import DashboardSource
from boson_services.monitor.dashboard.tasks import TaskReader
from boson_services.monitor.handlers import MonitorHandlers
from boson_shared.record.store import RecordStore


def dashboard_app(
    handlers: MonitorHandlers,
    *,
    store: RecordStore | None = None,
    canceller: Canceller | None = None,
    token: str | None = None,
    reading_needs_token: bool = False,
    requests_per_s: float = 1000.0,
    max_age_s: float = 0.0,
    share_s: float = 0.0,
    live_interval_s: float = 0.01,
) -> tuple[FastAPI, DashboardSource]:
    """The app and its source; every read fresh by default (tests change state between reads)."""
    source = DashboardSource(
        handlers,
        History.from_metrics(handlers.metrics),
        live_interval_s=live_interval_s,
        max_age_s=max_age_s,
        share_s=share_s,
        tasks=TaskReader(store) if store is not None else None,
        canceller=canceller,
    )
    guard = Guard(
        token=SecretStr(token) if token is not None else None,
        reading_needs_token=reading_needs_token,
    )
    app = build_app(source, guard, requests_per_s=requests_per_s, max_body_bytes=1024)
    return app, source


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client that calls ``app`` in process (no socket)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash")


__all__ = ["asgi_client", "dashboard_app"]
