"""What heartbeats alone cost the monitor: its CPU under ``--nodes`` nodes' heartbeats.

Run ``.venv/bin/python -m benchmarks.monitor_heartbeats`` from the repo root
against a RabbitMQ (``--amqp-url``), under the benchmark lock.

The monitor runs as its own process (``boson run monitor``, no dashboard),
its task record on a fresh, empty PostgreSQL database (``--postgres``; created
and dropped here), as in :mod:`benchmarks.dashboard`; this process publishes
one real heartbeat per node per second (:func:`benchmarks.dashboard.heartbeating_cluster`).
Once every node is seen alive, the monitor's user and system CPU over
``--seconds`` is printed as shares of one core, and per heartbeat. With
``--py-spy PATH`` the same window is also sampled by py-spy (its collapsed
stacks written to PATH; py-spy must be installed).

Everything runs in a fresh namespace that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dashboard import DEFAULT_POSTGRES, heartbeating_cluster, monitor_process
from tests.support.database import create_database, drop_database

SETTLE_S = 5.0


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"hb-{uuid.uuid4().hex[:8]}"
    database = await create_database(args.postgres, "boson_bench_heartbeats")
    log_dir = Path(tempfile.mkdtemp(prefix="boson-bench-heartbeats-"))
    try:
        async with (
            heartbeating_cluster(
                args.amqp_url, namespace, log_dir, database, args.nodes
            ) as cluster,
            monitor_process(cluster, None, args.nodes) as monitor,
        ):
            await asyncio.sleep(SETTLE_S)
            spy = None
            if args.py_spy is not None:
                command = [
                    shutil.which("py-spy") or "py-spy",
                    "record",
                    "--pid",
                    str(monitor.pid),
                    "--duration",
                    str(round(args.seconds)),
                    "--format",
                    "raw",
                    "--output",
                    args.py_spy,
                ]
                spy = await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.DEVNULL
                )
            before, began = monitor.cpu_times(), time.monotonic()
            await asyncio.sleep(args.seconds)
            after, elapsed = monitor.cpu_times(), time.monotonic() - began
            if spy is not None:
                async with asyncio.timeout(60):
                    await spy.wait()
        user = (after.user - before.user) / elapsed
        system = (after.system - before.system) / elapsed
        return {
            "nodes": args.nodes,
            "seconds": round(elapsed, 1),
            "cpu_core_share": round(user + system, 4),
            "user": round(user, 4),
            "system": round(system, 4),
            "cpu_us_per_heartbeat": round(1e6 * (user + system) / args.nodes, 1),
            "load_average": os.getloadavg(),
        }
    finally:
        await drop_database(args.postgres, database)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("BOSON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    parser.add_argument("--py-spy", help="also sample the window with py-spy into this file")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "measure"]
