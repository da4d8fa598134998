"""``boson health``: what a container HEALTHCHECK and a probe rely on.

Exit 0 when the service's endpoint says ok, 1 when it answers 503 (not yet
connected) or nobody listens — against a real HealthServer on a free port.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from boson.commands.health import check_endpoint
from boson_shared.runtime.health import HealthServer, Response


async def _check_against(status: int) -> int:
    body = {"service": "scheduler", "status": "ok" if status == 200 else "starting"}
    server = HealthServer("127.0.0.1", 0, {"/health": lambda: Response.json(body, status)})
    await server.start()
    try:
        return await asyncio.to_thread(check_endpoint, "127.0.0.1", server.port, 5.0)
    finally:
        await server.close()


async def test_healthy_service_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert await _check_against(200) == 0
    assert "healthy: scheduler (ok)" in capsys.readouterr().out


async def test_service_still_starting_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert await _check_against(503) == 1
    assert "answered 503" in capsys.readouterr().err


def test_nobody_listening_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert check_endpoint("127.0.0.1", port, 2.0) == 1
    assert "unhealthy" in capsys.readouterr().err
