"""The dashboard as an ASGI application: pages, ``/api``, OpenAPI, static files."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boson_services.monitor.dashboard import pages
from boson_services.monitor.dashboard.api import api_router, features
from boson_services.monitor.dashboard.security import Guard, Limits, ProblemError, RateLimiter
from boson_services.monitor.dashboard.source import DashboardSource

SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}


def _first_problem(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(problems)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS.items()]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


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
        openapi_url="/api/openapi.json",
    )
    app.include_router(api_router(source, guard))
    app.include_router(pages.router(features(source), guard.reading_needs_token))
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

    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        Limits,
        max_body_bytes=max_body_bytes,
        limiter=RateLimiter(requests_per_s, burst=2 * requests_per_s),
    )
    return app


__all__ = ["SECURITY_HEADERS", "build_app"]
