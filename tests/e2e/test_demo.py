"""``boson demo --json`` as a user runs it: a subprocess, the worked example.

The example is ``docs/design.md#worked-example``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from boson.launcher import KERNELS_NOTICE

REPO = Path(__file__).resolve().parents[2]
DEMO_BUDGET_S = 15.0
COLD_BUDGET_S = 100.0
"""A first run compiles the placement kernels: seconds of CPU, more on a loaded machine."""


def run_demo(*args: str) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "boson", "demo", "--json", *args],
        capture_output=True,
        text=True,
        timeout=DEMO_BUDGET_S,
        cwd=REPO,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < DEMO_BUDGET_S
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize(
    ("args", "demand", "chosen", "before", "after"),
    [
        ((), 110.0, "node-1", 0.7, 0.92),
        (("--strategy", "spread"), 110.0, "node-5", 0.4, 0.62),
        (("--complexity", "50", "--data-size", "2000"), 70.0, "node-2", 0.8, 0.94),
    ],
    ids=["binpack", "spread", "c50-d2000"],
)
def test_demo_places_the_worked_example(
    args: tuple[str, ...], demand: float, chosen: str, before: float, after: float
) -> None:
    report = run_demo(*args)

    assert isinstance(report["demand"], float | int)
    assert report["demand"] == pytest.approx(demand)
    assert report["chosen_node"] == chosen
    # The balancer really delivered it there (read from the node, not recomputed).
    assert report["assigned_node"] == chosen
    assert report["utilisation_before"] == pytest.approx(before)
    assert report["utilisation_after"] == pytest.approx(after)
    nodes = {node["node_id"]: node for node in report["nodes"]}
    assert sorted(nodes) == [f"node-{i}" for i in range(1, 6)]
    assert [nodes[f"node-{i}"]["utilisation_before"] for i in range(1, 6)] == pytest.approx(
        [0.7, 0.8, 0.6, 0.5, 0.4]
    )
    assert nodes[chosen]["fits"]
    assert report["elapsed_s"] < 10.0


def test_demo_shows_that_the_busiest_node_cannot_fit_demand_110() -> None:
    report = run_demo()
    nodes = {node["node_id"]: node for node in report["nodes"]}
    assert not nodes["node-2"]["fits"]  # 0.8 of 500 leaves 100 < 110
    assert nodes["node-2"]["score"] is None
    assert all(nodes[f"node-{i}"]["fits"] for i in (1, 3, 4, 5))


def test_demo_gpu_shows_the_devices_each_task_got(tmp_path: Path) -> None:
    """Shares meet on one device, whole GPUs get their own, each as its worker process saw."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "boson", "demo", "--gpu", "--json"],
        capture_output=True,
        text=True,
        timeout=60.0,
        cwd=REPO,
        check=False,
        env={**os.environ, "BOSON_DATABASE_URL": f"sqlite:///{tmp_path / 'record.db'}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60.0
    report = json.loads(proc.stdout)
    rows = {row["task"]: row for row in report["tasks"]}
    assert all(row["status"] == "succeeded" for row in rows.values())
    t4 = {f"GPU-demo-b{j}" for j in range(4)}
    a100 = {"GPU-demo-a0", "GPU-demo-a1"}
    # Two halves share one T4; the quarter goes to a device of its own (best
    # fit: the shared one is full); the whole T4 to a device no share holds.
    assert rows["share-1"]["CUDA_VISIBLE_DEVICES"] == rows["share-2"]["CUDA_VISIBLE_DEVICES"]
    shared = {rows[t]["CUDA_VISIBLE_DEVICES"] for t in ("share-1", "share-3", "one-t4")}
    assert len(shared) == 3
    assert shared <= t4
    assert rows["share-1"]["memory_budget_mib"] == str(15360 // 2)
    assert rows["share-3"]["memory_budget_mib"] == str(15360 // 4)
    assert set(rows["two-a100"]["CUDA_VISIBLE_DEVICES"].split(",")) == a100
    assert rows["two-a100"]["NVIDIA_VISIBLE_DEVICES"] == rows["two-a100"]["CUDA_VISIBLE_DEVICES"]
    assert rows["two-a100"]["memory_budget_mib"] is None
    assert rows["cpu-only"]["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.slow
def test_a_first_run_compiles_the_kernels_before_the_services_start(tmp_path: Path) -> None:
    """numba's cache empty, as on a fresh install: the compile says so and stalls no service.

    Compiled on the loop the services share, it held up the monitor's sweeps,
    which then logged a pause of its own.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "boson", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=COLD_BUDGET_S,
        cwd=REPO,
        check=False,
        env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert any(tmp_path.rglob("*.nbi")), "the kernels were not compiled into the empty cache"
    assert "paused" not in proc.stderr, proc.stderr
    assert KERNELS_NOTICE in proc.stderr
    report = json.loads(proc.stdout)
    assert report["chosen_node"] == report["assigned_node"] == "node-1"
