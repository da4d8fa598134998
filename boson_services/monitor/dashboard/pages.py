"""The HTML pages: Jinja2 templates filled in by the browser from ``/api``.

A page carries no data and no secret: it is the same for everyone, and its
script reads the API (with the token from ``sessionStorage`` when one is
needed) and listens to ``/api/events`` to refresh in place.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

PAGES: tuple[tuple[str, str, str], ...] = (
    ("cluster", "/", "Cluster"),
    ("tasks", "/tasks", "Tasks"),
    ("tenants", "/tenants", "Tenants"),
    ("alerts", "/alerts", "Alerts"),
    ("throughput", "/throughput", "Throughput"),
)
"""(feature, path, title) of every page, in navigation order; a page whose
feature is not available yet has no route and no navigation entry."""

TASK_PAGE = "/tasks/{task_id}"
"""One task's page (with the ``tasks`` feature; no navigation entry of its own)."""

TEMPLATES = resources.files("boson_services.monitor.dashboard") / "templates"
STATIC = resources.files("boson_services.monitor.dashboard") / "static"


def templates() -> Jinja2Templates:
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )
    return Jinja2Templates(env=environment)


def add_pages(app: APIRouter, features: frozenset[str], reading_needs_token: bool) -> None:
    """The pages of these ``features`` as routes of ``app`` (none in the OpenAPI document)."""
    jinja = templates()
    navigation = [(path, title) for feature, path, title in PAGES if feature in features]

    def add(feature: str, path: str, title: str, template: str) -> None:
        # The shell is the same for every task: its script reads the id from the path.
        async def page(request: Request) -> HTMLResponse:
            return jinja.TemplateResponse(
                request,
                template,
                {
                    "title": title,
                    "feature": feature,
                    "navigation": navigation,
                    "needs_token": reading_needs_token,
                },
                headers={"Cache-Control": "no-store"},
            )

        app.add_api_route(
            path, page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False
        )

    for feature, path, title in PAGES:
        if feature in features:
            add(feature, path, title, f"{feature}.html")
    if "tasks" in features:
        add("task", TASK_PAGE, "Tasks", "task.html")


__all__ = ["PAGES", "STATIC", "TASK_PAGE", "TEMPLATES", "add_pages", "templates"]
