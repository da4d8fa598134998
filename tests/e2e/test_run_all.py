"""``boson run all``: every service and N executors as children, drained together."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from boson.commands.run import SERVICES
from boson_shared.contract.keyring import generate_key_spec
from tests.support.cluster import FAST_TIMINGS, ROOT, free_port


def health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            body: dict[str, object] = json.loads(response.read())
            return body
    except (OSError, ValueError):
        return None


def api_cluster(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cluster", timeout=5) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


@pytest.mark.broker
@pytest.mark.timeout(120)
async def test_run_all_starts_everything_on_its_own_port_and_drains_on_sigterm(
    amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    base = free_port()
    dashboard = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    env.update(FAST_TIMINGS)
    env.update(
        BOSON_KEYS=generate_key_spec(),
        BOSON_NAMESPACE=namespace,
        BOSON_BLOB_DIR=str(tmp_path / "blobs"),
        # A port every child would inherit: run all must give each its own.
        BOSON_HEALTH_PORT=str(base),
    )
    children = len(SERVICES) - 1 + 2  # every service but executor, plus two executors
    parent = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "boson", "run", "all", "--executors", "2", "--broker", amqp_url],
        *["--dashboard-port", str(dashboard)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        services: set[object] = set()
        async with asyncio.timeout(60):
            while len(services) < len(SERVICES):
                bodies = [await asyncio.to_thread(health, base + i) for i in range(children)]
                services = {b.get("service") for b in bodies if b and b.get("status") == "ok"}
                await asyncio.sleep(0.2)
        assert services == set(SERVICES)
        assert parent.stdout is not None
        line = await asyncio.wait_for(parent.stdout.readline(), 5)
        assert line.decode().strip() == (
            f"boson run all: dashboard at http://127.0.0.1:{dashboard}/"
        )
        cluster = await asyncio.to_thread(api_cluster, dashboard)
        assert "nodes" in cluster
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(parent.wait(), 60) == 0
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()
