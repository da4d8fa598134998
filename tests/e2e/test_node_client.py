"""A client in another language, written from docs/ alone, against the real services.

``examples/clients/node`` (Node.js, amqplib) submits a ``stats`` task and prints
its result. It is run as a user would run it, against the five services as
processes; the test checks the numbers against the CSV it sent. Its
dependencies come from its committed package-lock.json (``npm ci``, which
``.ci/run`` does when ``node_modules`` is missing).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import os
import shutil
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import ROOT, ProcessCluster

CLIENT = ROOT / "examples" / "clients" / "node"
CSV = ROOT / "examples" / "measurements.csv"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (node not on PATH)"),
]


@pytest.fixture
def cluster(amqp_url: str, namespace: str, tmp_path: Path) -> Iterator[ProcessCluster]:
    processes = ProcessCluster(amqp_url, namespace, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


async def run_client(
    cluster: ProcessCluster, *args: str, keys: str | None = None
) -> tuple[int, str, str]:
    if not (CLIENT / "node_modules").is_dir():
        pytest.fail(f"run `npm ci` in {CLIENT} first (.ci/run does)")
    assert NODE is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    env.update(
        BOSON_BROKER_URL=cluster.amqp_url,
        BOSON_KEYS=keys if keys is not None else cluster.keys,
        BOSON_NAMESPACE=cluster.namespace,
    )
    process = await asyncio.create_subprocess_exec(
        NODE,
        "submit-stats.mjs",
        *args,
        cwd=CLIENT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def unpadded_urlsafe(spec: str) -> str:
    """The same keyring line, its key in URL-safe base64 without padding (wire-format §7)."""
    key_id, _, key = spec.partition(":")
    return f"{key_id}:{base64.urlsafe_b64encode(base64.b64decode(key)).decode().rstrip('=')}"


@pytest.mark.timeout(150)
async def test_the_node_client_submits_stats_and_prints_the_result(
    cluster: ProcessCluster,
) -> None:
    # Before any scheduler declared the submit queue, the mandatory publish
    # is returned and the client says so, instead of the task vanishing.
    code, out, err = await run_client(cluster, "--input", str(CSV), "--timeout", "2")
    assert code == 2
    assert out == ""
    assert err.strip() == "boson-node: the submit queue never appeared (unroutable)"

    for service in ("monitor", "scheduler", "balancer"):
        cluster.start(service)
    cluster.start("executor", "--node-id", "node-js-1", name="executor")
    await cluster.wait_healthy()

    code, out, err = await run_client(
        cluster, "--input", str(CSV), "--timeout", "60", keys=unpadded_urlsafe(cluster.keys)
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["node_id"] == "node-js-1"
    rows = list(csv.DictReader(io.StringIO(CSV.read_text())))
    output = result["output"]
    assert output["rows"] == len(rows)
    temperatures = [float(row["temperature"]) for row in rows]
    assert output["columns"]["temperature"]["mean"] == pytest.approx(statistics.fmean(temperatures))
    assert output["columns"]["temperature"]["max"] == pytest.approx(max(temperatures))


async def test_the_node_client_refuses_bad_input_in_one_line(cluster: ProcessCluster) -> None:
    code, out, err = await run_client(cluster, "--timeout", "1")
    assert (code, out) == (2, "")
    assert err.strip() == "boson-node: --input FILE is required (a CSV file for `stats`)"
    code, _, err = await run_client(cluster, "--input", str(CSV), keys="k1:short")
    assert code == 2
    assert err.strip() == "boson-node: BOSON_KEYS key k1 is not 32 bytes"
