"""The dashboard as the monitor serves it: a real socket on loopback, refusals."""

from __future__ import annotations

import asyncio
import socket
import threading
import tomllib
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.pool import QueuePool

from boson_services.monitor.app import create as create_monitor
from boson_services.monitor.dashboard.server import Dashboard
from boson_services.monitor.settings import MonitorSettings, is_loopback
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.errors import ConfigError
from tests.support.monitor import heartbeat, monitor_state
from tests.support.stuck_service import deaf_to_cancels


def settings(**values: object) -> MonitorSettings:
    return MonitorSettings.model_validate({"dashboard_port": 0, **values})


async def test_it_listens_on_loopback_and_stops() -> None:
    handlers, _ = monitor_state()
    dashboard = Dashboard(settings(), handlers)
    await dashboard.start()
    try:
        assert dashboard.url == f"http://127.0.0.1:{dashboard.port}/"
        async with httpx.AsyncClient(base_url=dashboard.url, timeout=5) as http:
            assert (await http.get("/api/cluster")).json()["nodes"] == 3
            assert "server" not in (await http.get("/")).headers
    finally:
        await dashboard.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=2) as http:
            await http.get(dashboard.url)


async def test_it_serves_from_its_own_thread_what_the_monitor_captured() -> None:
    """Requests never run on the monitor's loop: they see the state captured last."""
    handlers, _ = monitor_state()
    dashboard = Dashboard(settings(), handlers)
    await dashboard.start()
    try:
        async with httpx.AsyncClient(base_url=dashboard.url, timeout=5) as http:
            handlers.on_heartbeat(heartbeat("node-0009"))
            handlers.tick()
            assert (await http.get("/api/cluster")).json()["nodes"] == 3  # not captured yet
            dashboard.capture()
            assert (await http.get("/api/cluster")).json()["nodes"] == 4
    finally:
        await dashboard.stop()


async def test_it_serves_on_uvloop_with_httptools_and_leaves_the_monitors_loop_alone() -> None:
    """The web extra brings both: C parsing and a C loop for the dashboard's thread only."""
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    handlers, _ = monitor_state()
    dashboard = Dashboard(settings(), handlers)
    await dashboard.start()
    try:
        async with httpx.AsyncClient(base_url=dashboard.url, timeout=5) as http:
            assert (await http.get("/api/cluster")).status_code == 200
        assert isinstance(dashboard.loop, uvloop.Loop)
        assert not isinstance(asyncio.get_running_loop(), uvloop.Loop)
        assert dashboard._server is not None
        assert issubclass(dashboard._server.config.http_protocol_class, HttpToolsProtocol)
    finally:
        await dashboard.stop()


class ThreadNoting:
    def __init__(self) -> None:
        self.threads: list[str] = []

    async def cancel(self, task_ids: Sequence[str]) -> None:
        self.threads.append(threading.current_thread().name)


async def test_its_thread_ends_though_a_task_on_its_loop_ignores_its_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handlers, _ = monitor_state()
    dashboard = Dashboard(settings(), handlers)
    await dashboard.start()
    thread, loop = dashboard._thread, dashboard.loop
    assert thread is not None
    assert loop is not None
    loop.call_soon_threadsafe(lambda: loop.create_task(deaf_to_cancels(), name="dashboard:stuck"))
    await dashboard.stop()
    assert not thread.is_alive(), "the dashboard's thread waits on a task that ignores its cancel"
    assert "left behind: dashboard:stuck (deaf_to_cancels)" in caplog.text


async def test_cancel_crosses_back_to_the_monitors_loop() -> None:
    handlers, _ = monitor_state()
    noting = ThreadNoting()
    dashboard = Dashboard(settings(api_token=SecretStr("t0ken")), handlers, canceller=noting)
    await dashboard.start()
    try:
        canceller = dashboard.source.canceller
        assert canceller is not None
        # Called from another loop on another thread, as a request would.
        await asyncio.to_thread(asyncio.run, canceller.cancel(["task-1"]))
    finally:
        await dashboard.stop()
    assert noting.threads == [threading.current_thread().name]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::", "dashboard.example"])
def test_beyond_loopback_it_refuses_to_start_without_a_token(host: str) -> None:
    handlers, _ = monitor_state()
    with pytest.raises(ConfigError, match="set BOSON_API_TOKEN"):
        Dashboard(settings(dashboard_host=host), handlers)
    with pytest.raises(ConfigError, match="set BOSON_API_TOKEN"):
        Dashboard(settings(dashboard_host=host, api_token=SecretStr("")), handlers)
    Dashboard(settings(dashboard_host=host, api_token=SecretStr("t0ken")), handlers)


def test_the_monitor_refuses_the_same_way() -> None:
    codec = EnvelopeCodec.from_settings(MonitorSettings(), keyring=Keyring.ephemeral())
    with pytest.raises(ConfigError, match="beyond loopback"):
        create_monitor(settings(dashboard_host="0.0.0.0"), MemoryTransport(MemoryBroker()), codec)
    off = create_monitor(MonitorSettings(), MemoryTransport(MemoryBroker()), codec)
    assert off.dashboard is None


async def test_a_busy_port_is_a_clear_config_error() -> None:
    handlers, _ = monitor_state()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dashboard = Dashboard(settings(dashboard_port=port), handlers)
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await dashboard.start()


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org"))


def globbed(name: str, glob: str) -> bool:
    """As setuptools globs: ``*`` stays within one directory."""
    parts, pattern = name.split("/"), glob.split("/")
    return len(parts) == len(pattern) and all(map(fnmatch, parts, pattern))


def test_the_wheel_ships_every_template_and_static_file() -> None:
    """package-data's globs cover every non-Python file of the dashboard."""
    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["boson_services.monitor.dashboard"]
    package = root / "boson_services" / "monitor" / "dashboard"
    assets = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"}
    ]
    assert any(name.endswith("uPlot.iife.min.js") for name in assets)
    assert any(name.endswith("LICENSE") for name in assets)
    unshipped = [name for name in assets if not any(globbed(name, glob) for glob in globs)]
    assert not unshipped, f"not in package-data: {unshipped}"


def test_its_record_reads_share_a_fixed_pool_of_the_configured_size(tmp_path: Path) -> None:
    handlers, _ = monitor_state()
    dashboard = Dashboard(
        settings(dashboard_record_connections=4),
        handlers,
        record_url=f"sqlite:///{tmp_path / 'records.sqlite3'}",
    )
    assert dashboard.source.tasks is not None
    pool = dashboard.source.tasks.store.engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (4, 0)
