"""The dashboard as an ASGI application: pages, ``/api``, OpenAPI, static files."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from boson_services.monitor.dashboard import pages
from boson_services.monitor.dashboard.api import add_api, features
from boson_services.monitor.dashboard.security import Gate, Guard, ProblemError, RateLimiter
from boson_services.monitor.dashboard.source import DashboardSource

OPENAPI_URL = "/api/openapi.json"
"""The API's description: open to every reader, like the page shells."""


def _first_problem(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(problems)


def build_app(
    source: DashboardSource,
    guard: Guard,
    *,
    requests_per_s: float,
    max_body_bytes: int,
) -> FastAPI:
    app = FastAPI(
        title="Boson dashboard API",
        summary="The live cluster as the monitor sees it",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        # The dashboard exports no OpenTelemetry: no per-request look-up of providers.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # Every route on the app's own router, in one flat list (an included router
    # is walked anew, nested, on every request): the API first, then the pages.
    add_api(app.router, source, guard)
    pages.add_pages(app.router, features(source), guard.reading_needs_token)
    app.mount("/static", StaticFiles(directory=str(pages.STATIC)), name="static")

    @app.exception_handler(ProblemError)
    async def problem(_request: Request, error: ProblemError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _first_problem(error)}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = "no such page or endpoint" if error.status_code == 404 else str(error.detail)
        return JSONResponse({"detail": detail}, error.status_code, headers=error.headers)

    app.add_middleware(
        Gate,
        guard=guard,
        limiter=RateLimiter(requests_per_s, burst=2 * requests_per_s),
        max_body_bytes=max_body_bytes,
        open_paths=frozenset({OPENAPI_URL}),
    )
    return app


__all__ = ["OPENAPI_URL", "build_app"]
