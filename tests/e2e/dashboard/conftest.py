"""What every dashboard browser test shares: a running Boson with the dashboard, the
browser (Debian's Chromium, driven by Playwright), and where screenshots go.

A test module sets its Boson up with ``BOSON_ENV`` (service settings, read
from ``BOSON_`` variables as in a deployment) and ``EXECUTORS`` (node ids of
two-slot executors) at module level; ``TOKEN`` is the API token of them all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from boson.launcher import EmbeddedCluster
from boson_shared.settings import BosonSettings
from tests.support.chromium import CHROMIUM, headless_chromium

TOKEN = "browser-test-token"

if not CHROMIUM.exists() and not os.environ.get("CI"):
    collect_ignore_glob = ["test_*.py"]  # no browser here: .ci/run installs Debian's chromium


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[EmbeddedCluster]:
    settings = {**getattr(request.module, "BOSON_ENV", {}), "BOSON_API_TOKEN": TOKEN}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    running = EmbeddedCluster(BosonSettings())
    with caplog.at_level(logging.INFO, logger="boson.launcher"):
        await running.start_control_plane(dashboard_port=0)
        for node_id in getattr(request.module, "EXECUTORS", ("local-1",)):
            await running.start_executor(node_id, slots=2)
    try:
        assert running.dashboard_url is not None
        assert f"Boson dashboard at {running.dashboard_url}" in caplog.text
        yield running
    finally:
        await running.stop()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """``BOSON_SCREENSHOT_DIR``, or a temporary directory."""
    given = os.environ.get("BOSON_SCREENSHOT_DIR")
    folder = Path(given) if given else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with headless_chromium() as launched:
        yield launched
