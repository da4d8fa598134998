"""``boson submit --wait`` on RabbitMQ: bounded, explained, streamed, interruptible."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from boson_shared.contract.keyring import generate_key_spec
from tests.support.cluster import ROOT, ProcessCluster

CLI_TIMEOUT_S = 60.0


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float


async def submit(cluster: ProcessCluster, *args: str, keys: str | None = None) -> Ran:
    """``boson submit ARGS`` as a user would run it, against the cluster's broker."""
    env = cluster.env()
    if keys is not None:
        env["BOSON_KEYS"] = keys
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "boson", "submit", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


def client_queues(namespace: str) -> list[str]:
    """The queues of one-shot CLI clients on the namespace: reply, retry tiers, dead watch."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # CLI clients are ``client-<id>`` (executors have client queues of their own).
    return [q for q in listed.stdout.split() if q.startswith(namespace) and ".client-" in q]


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_wait_with_no_scheduler_says_so_at_once(cluster: ProcessCluster) -> None:
    ran = await submit(cluster, "noop", "--wait")
    assert ran.code == 2, ran
    assert ran.err.strip() == (
        f"boson: NoAnswerError: nothing consumes {cluster.namespace}.tasks.submit: no scheduler "
        f"runs on namespace {cluster.namespace!r} (start the services: `boson run all`); "
        "nothing submitted"
    )
    assert client_queues(cluster.namespace) == []  # nothing submitted, nothing left


@pytest.mark.broker
@pytest.mark.timeout(120)
async def test_a_wait_ends_with_what_is_known(cluster: ProcessCluster) -> None:
    cluster.start("scheduler")
    await cluster.wait_healthy()

    # A key the services do not hold: the scheduler dead-letters the envelope
    # without reading it; the client learns it from the plaintext id and reason.
    stranger = await submit(cluster, "noop", "--wait", keys=generate_key_spec())
    assert stranger.code == 1, stranger
    line = stranger.out.strip()
    assert "failed after 1 attempt(s): dead-lettered: dead-lettered from" in line, stranger
    assert f"{cluster.namespace}.tasks.submit (unknown-key)" in line
    assert "BOSON_KEYS" in line

    # Placed nowhere (no monitor, no executor): the wait is bounded and says why.
    stuck = await submit(
        cluster, "noop", "--wait", "--wait-timeout", "2", "--handler-module", "my_handlers"
    )
    assert stuck.code == 3, stuck
    assert stuck.out == ""
    # A handler module means nothing to executors already running elsewhere.
    assert "the executors must be started with it" in stuck.err
    assert "boson: gave up after --wait-timeout 2 s: 0 of 1 finished; still out: " in stuck.err
    assert stuck.err.strip().endswith(
        "1 scheduler(s) consume the submit queue; "
        "no monitor answered, so which nodes are alive is unknown"
    )
    assert stuck.seconds < 30


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_results_stream_and_ctrl_c_reports_what_still_runs(
    cluster: ProcessCluster,
) -> None:
    for service in ("monitor", "scheduler", "balancer"):
        cluster.start(service)
    cluster.start("executor", "--node-id", "cli-1", "--slots", "2", name="executor")
    await cluster.wait_healthy()

    done = await submit(cluster, "burn", "--param", "seconds=0.05", "--count", "3", "--wait")
    assert done.code == 0, done
    assert len(done.out.splitlines()) == 3
    assert all(" succeeded on cli-1: " in line for line in done.out.splitlines())
    # Every result arrived: the one-shot client removed its queues.
    assert client_queues(cluster.namespace) == []

    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "boson", "submit", "burn", "--param", "seconds=1.5"],
        *["--count", "6", "--wait"],
        cwd=ROOT,
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    # Two slots: the first two finish together, the rest are still running.
    first = await asyncio.wait_for(process.stdout.readline(), 60)
    assert b" succeeded on cli-1: " in first
    await asyncio.sleep(0.2)
    interrupted_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    stopped_s = time.monotonic() - interrupted_at
    finished = [first.decode(), *out.decode().splitlines()]
    assert process.returncode == 130, err
    assert stopped_s < 10
    message = err.decode().strip()
    assert message.startswith(f"boson: interrupted: {len(finished)} of 6 finished; ")
    assert f"{6 - len(finished)} still running: " in message
    # The results still to come can be read later: the client's queue stays.
    assert client_queues(cluster.namespace) != []
