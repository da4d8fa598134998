"""``boson simulate`` end to end on a generic CSV trace small enough to follow by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boson.cli import main


def write_trace(directory: Path) -> list[str]:
    """Ten (2, 2) nodes; n0 fails at t=1 and t=30 (back 1 s later); one (1, 1) task at t=5."""
    tasks = directory / "tasks.csv"
    tasks.write_text("submit_time,duration,cpu,memory\n5,40,1,1\n")
    nodes = directory / "nodes.csv"
    nodes.write_text("node_id,cpu,memory\n" + "".join(f"n{i},2,2\n" for i in range(10)))
    events = directory / "events.csv"
    events.write_text("time,node_id,event\n1,n0,down\n2,n0,up\n30,n0,down\n31,n0,up\n")
    files = ["--tasks", str(tasks), "--nodes", str(nodes), "--events", str(events)]
    return ["simulate", "--format", "csv", *files, "--strategy", "binpack+rebalance", "--json"]


@pytest.mark.parametrize(
    ("extra", "replaced", "jct"), [([], 0, 40.0), (["--probation-s", "0"], 1, 65.0)]
)
def test_probation_keeps_the_task_off_the_node_that_fails_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], replaced: int, jct: float
) -> None:
    # Binpack puts the task on the lowest-index empty node, n0 — unless n0 is
    # on probation (one node in ten may be), from t=2 for an hour. Then it
    # runs 5–45 on n1. Without probation it dies with n0 at t=30 and starts
    # over: it ends at 70, 65 s after it was submitted.
    assert main([*write_trace(tmp_path), *extra]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert (result["replaced"], result["jct_mean"]) == (replaced, jct)


def test_a_negative_probation_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*write_trace(tmp_path), "--probation-s", "-1"]) == 2
    assert "--probation-s must be 0 (none) or more" in capsys.readouterr().err


def test_plot_writes_the_three_charts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")  # the optional "plot" extra
    charts = tmp_path / "charts"
    assert main([*write_trace(tmp_path), "--plot", str(charts)]) == 0
    names = sorted(p.name for p in charts.iterdir())
    assert names == ["sim-jct-cdf.png", "sim-node-spread.png", "sim-utilisation.png"]
    assert all((charts / name).read_bytes().startswith(b"\x89PNG") for name in names)
