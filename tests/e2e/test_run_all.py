"""``boson run all``: every service and N executors as children, drained together."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from boson.client import TaskRequest
from boson.commands.run import SERVICES
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import generate_key_spec
from boson_shared.contract.messages import NodeHeartbeat
from boson_shared.contract.topology import rk_heartbeat
from boson_shared.runtime.tap import Tap
from boson_shared.settings import BosonSettings
from tests.reliability.harness import CountingClient, assert_exactly_once, gather_results
from tests.support.cluster import FAST_TIMINGS, ROOT, free_port
from tests.support.waiting import wait_for_nodes, wait_until


def health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            body: dict[str, object] = json.loads(response.read())
            return body
    except (OSError, ValueError):
        return None


@pytest.mark.broker
@pytest.mark.timeout(120)
async def test_run_all_starts_everything_on_its_own_port_and_drains_on_sigterm(
    amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    base = free_port()
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
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
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
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(parent.wait(), 60) == 0
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


VICTIM = "sup-1"


def _executor_pid(parent_pid: int, node_id: str) -> int | None:
    for child in psutil.Process(parent_pid).children():
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        if node_id in command:
            return child.pid
    return None


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_run_all_restarts_a_killed_executor_and_every_result_arrives_once(
    amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    keys = generate_key_spec()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    env.update(FAST_TIMINGS)
    env.update(BOSON_KEYS=keys, BOSON_NAMESPACE=namespace, BOSON_BLOB_DIR=str(tmp_path / "blobs"))
    log = (tmp_path / "run-all.log").open("wb")
    command = [sys.executable, "-m", "boson", "run", "all", "--executors", "2"]
    parent = await asyncio.create_subprocess_exec(
        *command,
        "--node-id",
        "sup",
        "--broker",
        amqp_url,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    settings = BosonSettings(
        broker_url=amqp_url,  # type: ignore[arg-type]
        keys=keys,  # type: ignore[arg-type]
        namespace=namespace,
    )
    client = await CountingClient.connect(settings=settings)
    assert isinstance(client, CountingClient)
    transport = AmqpTransport(amqp_url, connection_name="boson-test-heartbeats")
    beats = Tap(
        transport,
        EnvelopeCodec.from_settings(settings),
        f"{namespace}.test.beats",
        [(client.names.events_exchange, rk_heartbeat(VICTIM))],
    )
    try:
        await beats.start()
        await wait_for_nodes(client, 2, timeout=60)
        handles = await client.submit_many(
            [TaskRequest("burn", params={"seconds": 0.03}) for _ in range(300)]
        )

        async def a_third_done() -> bool:
            return sum(client.shown.values()) >= 100

        await wait_until(a_third_done, timeout=60)
        victim = _executor_pid(parent.pid, VICTIM)
        assert victim is not None
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)

        def restarted(message: object) -> bool:
            return isinstance(message, NodeHeartbeat) and message.started_at > killed_at

        await beats.wait_for(restarted, 10)
        results = await gather_results(client, handles, timeout=120)
        assert_exactly_once(client, results)
        assert all(r.status == "succeeded" for r in results.values())
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(parent.wait(), 60) == 0
    finally:
        await beats.close()
        await transport.close()
        await client.close()
        if parent.returncode is None:
            parent.kill()
            await parent.wait()
        log.close()
    output = (tmp_path / "run-all.log").read_text()
    assert f"executor {VICTIM} was killed by SIGKILL; restarting it in 1 s" in output
    assert "BrokenPipeError" not in output
