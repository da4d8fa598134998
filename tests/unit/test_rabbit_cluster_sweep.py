"""The cluster fixture's sweep: nodes of a run killed outright are killed and deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.rabbit_cluster import sweep_stale


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def _stand_in_node(run_dir: Path, name: str) -> subprocess.Popen[bytes]:
    """A process playing a node's VM, with the pid file a node writes."""
    node = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (run_dir / name).mkdir(parents=True)
    (run_dir / name / "rabbit.pid").write_text(f"{node.pid}\n")
    return node


def test_a_run_whose_owner_died_is_killed_and_deleted(tmp_path: Path) -> None:
    stale = tmp_path / "aaaaaa"
    stale.mkdir()
    (stale / "owner").write_text(str(_dead_pid()))
    nodes = [_stand_in_node(stale, f"boson-aaaaaa-{i}") for i in (1, 2)]
    try:
        swept = sweep_stale(tmp_path)
        assert sorted(swept) == ["boson-aaaaaa-1", "boson-aaaaaa-2"]
        assert not stale.exists()
        for node in nodes:
            assert node.wait(timeout=10) == -9
    finally:
        for node in nodes:
            node.kill()
            node.wait(timeout=10)


def test_a_run_whose_owner_lives_is_left_alone(tmp_path: Path) -> None:
    live = tmp_path / "bbbbbb"
    live.mkdir()
    (live / "owner").write_text(str(os.getpid()))
    node = _stand_in_node(live, "boson-bbbbbb-1")
    try:
        assert sweep_stale(tmp_path) == []
        assert live.exists()
        assert node.poll() is None
    finally:
        node.kill()
        node.wait(timeout=10)
