"""``GET /api/events``: server-sent events, a :class:`Summary` every interval.

The pages read it with ``fetch`` (not ``EventSource``, which cannot send the
bearer header) and refresh what they show on each event, without reloading.
The stream ends when the client goes or the dashboard stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from boson_services.monitor.dashboard.security import Guard
from boson_services.monitor.dashboard.source import DashboardSource


def add_routes(api: APIRouter, source: DashboardSource, guard: Guard) -> None:
    @api.get(
        "/api/events",
        tags=["live"],
        summary="Live summary as server-sent events (text/event-stream)",
        response_class=StreamingResponse,
    )
    async def events(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100_000, description="end after this many")] = 100_000,
    ) -> StreamingResponse:
        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 3000\n\n"
            for _ in range(limit):
                if await request.is_disconnected():
                    return
                yield f"event: summary\ndata: {source.summary().model_dump_json()}\n\n".encode()
                await asyncio.sleep(source.live_interval_s)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


__all__ = ["add_routes"]
