"""An answer's header and body leave the dashboard in one write."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from boson_services.monitor.dashboard.coalesce import CoalescingWrites
from boson_services.monitor.dashboard.server import Dashboard
from boson_services.monitor.settings import MonitorSettings
from tests.support.monitor import monitor_state


class Recording(asyncio.Transport):
    """A transport that keeps what is written to it, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def test_writes_within_one_turn_leave_as_one() -> None:
    inner = Recording()
    transport = CoalescingWrites(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert inner.writes == []  # held until the end of this turn
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's


async def test_closing_writes_what_is_held_first() -> None:
    inner = Recording()
    transport = CoalescingWrites(inner, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"]
    assert inner.closed
    assert transport.is_closing()
    await asyncio.sleep(0)
    assert inner.writes == [b"last words"]  # not twice


async def test_an_answer_before_connection_close_arrives_whole() -> None:
    """uvicorn closes right after the body when the client asks it to: nothing held is lost."""
    handlers, _ = monitor_state()
    dashboard = Dashboard(MonitorSettings.model_validate({"dashboard_port": 0}), handlers)
    await dashboard.start()
    try:
        assert dashboard.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", dashboard.port)
        writer.write(b"GET /api/cluster HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()  # to the server's close
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["nodes"] == 3
    finally:
        await dashboard.stop()
