"""The in-process cluster's stop is bounded: a service that never ends is cancelled."""

from __future__ import annotations

import asyncio
import logging

import pytest

from boson.launcher import EmbeddedCluster
from boson_shared.settings import BosonSettings
from tests.support.stuck_service import StuckOnStop

pytestmark = pytest.mark.timeout(60)


async def test_a_service_that_does_not_stop_is_cancelled_at_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = BosonSettings(namespace="launcher-stop", drain_grace_s=0.1)
    cluster = EmbeddedCluster(settings)
    service = StuckOnStop(settings, cluster.transport(), cluster._codec())
    await cluster.start(service)
    running = cluster._running[0]
    caplog.set_level(logging.ERROR, logger="boson.launcher")
    async with asyncio.timeout(10):
        await cluster.stop(timeout=0.5)
        # Cancelled, not left running: it ends now.
        await asyncio.wait({running.task})
    assert running.task.cancelled()
    assert "stuck-on-stop did not stop within 0.5s; cancelled" in caplog.text
    cluster.broker.close()
