"""The tiny HTTP endpoint every service serves, and the base service's routes."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest

from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.runtime.health import HealthServer, Response
from boson_shared.settings import BosonSettings
from tests.support.stuck_service import BareService


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(5):
            data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


async def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    return await request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".encode())


def broken() -> Response:
    raise RuntimeError("secret detail")


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    routes = {
        "/health": lambda: Response.json({"status": "ok"}),
        "/text": lambda: Response(200, b"plain", "text/plain"),
        "/broken": broken,
    }
    health = HealthServer("127.0.0.1", 0, routes)
    await health.start()
    try:
        yield health
    finally:
        await health.close()


async def test_get_returns_the_route_body_with_length_and_type(server: HealthServer) -> None:
    status, headers, body = await get(server.port, "/health?verbose=1")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    status, headers, body = await get(server.port, "/text")
    assert (status, headers["content-type"], body) == (200, "text/plain", b"plain")


async def test_unknown_path_is_404_listing_the_paths(server: HealthServer) -> None:
    status, _, body = await get(server.port, "/nope")
    assert status == 404
    assert json.loads(body)["paths"] == ["/broken", "/health", "/text"]


async def test_only_get_is_served(server: HealthServer) -> None:
    status, _, _ = await request(server.port, b"POST /health HTTP/1.0\r\n\r\n")
    assert status == 405
    status, _, _ = await request(server.port, b"\r\n\r\n")
    assert status == 405


async def test_a_failing_route_is_503_without_its_message(server: HealthServer) -> None:
    status, _, body = await get(server.port, "/broken")
    assert status == 503
    assert json.loads(body) == {"status": "error", "error": "RuntimeError"}
    assert b"secret" not in body
    # The server survives it.
    assert (await get(server.port, "/health"))[0] == 200


async def test_port_before_start_and_after_close_is_an_error() -> None:
    health = HealthServer("127.0.0.1", 0, {})
    with pytest.raises(RuntimeError):
        _ = health.port
    await health.start()
    assert health.port > 0
    await health.close()
    await health.close()  # idempotent
    with pytest.raises(RuntimeError):
        _ = health.port


class Idle(BareService):
    name = "idle"


async def test_service_health_is_503_until_started_then_200() -> None:
    broker = MemoryBroker()
    settings = BosonSettings(namespace="health-test", instance_id="one")
    service = Idle(settings, MemoryTransport(broker), EnvelopeCodec(Keyring.ephemeral()))
    route = service.routes()["/health"]
    assert route().status == 503
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(5):
            await service.started.wait()
        response = route()
        body = json.loads(response.body)
        assert response.status == 200
        assert body["service"] == "idle"
        assert body["instance"] == "one"
        assert body["broker_connected"] is True
        assert body["in_flight"] == 0
    finally:
        stop.set()
        await task
        await service.transport.close()
        broker.close()


def _silent_client(port: int, path: str) -> socket.socket:
    """A client that sends its request, then never reads: a small receive
    buffer, so that the response soon waits on the server's side."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    return sock


async def _served_until_dropped(body_bytes: int, *, send_buffer: int | None = None) -> float:
    """Serve a ``body_bytes`` response to a silent client; how long the
    connection stayed open (the test fails if it is never dropped).

    ``send_buffer``: the server's kernel send buffer (accepted connections
    inherit the listener's), instead of one that grows to megabytes.
    """
    routes = {"/big": lambda: Response(200, b"x" * body_bytes, "text/plain")}
    health = HealthServer("127.0.0.1", 0, routes, io_timeout_s=0.3)
    await health.start()
    if send_buffer is not None:
        assert health._server is not None
        for listener in health._server.sockets:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock = await asyncio.to_thread(_silent_client, health.port, "/big")
    try:
        began = time.monotonic()
        async with asyncio.timeout(10):
            while health.open_connections == 0:  # noqa: ASYNC110 - the server's state
                await asyncio.sleep(0.01)
            while health.open_connections:  # noqa: ASYNC110 - the server's state
                await asyncio.sleep(0.01)
        return time.monotonic() - began
    finally:
        sock.close()
        await health.close()


async def test_a_client_that_stops_reading_is_dropped_within_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="boson_shared.runtime.health")
    # Far more than the socket buffers hold: the server's write waits on the client.
    held_s = await _served_until_dropped(16 * 1024 * 1024)
    assert held_s < 5
    assert "did not take its response within 0.3s; dropped" in caplog.text


async def test_a_response_left_unread_in_the_buffer_does_not_hold_the_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="boson_shared.runtime.health")
    # More than the small socket buffers take, less than the write buffer that
    # makes a write wait: the write returns at once, and what is left waits to
    # be sent when the server closes the connection.
    held_s = await _served_until_dropped(40 * 1024, send_buffer=4096)
    assert held_s < 5
    assert "did not take its response within 0.3s; dropped" in caplog.text
