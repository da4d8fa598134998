"""``boson status``: a dead node shows no stale load, in the table and in ``--json``."""

from __future__ import annotations

import pytest

from boson.commands.status import render, report_of
from boson_shared.contract.messages import ClusterSnapshot, NodeState, ResourceVector


def node(node_id: str, *, alive: bool) -> NodeState:
    return NodeState(
        node_id=node_id,
        alive=alive,
        capacity=ResourceVector(cpu=4, memory=4),
        allocated=ResourceVector(cpu=2, memory=2),
        slots=2,
        running=2,
        free_slots=0,
        measured_cpu=0.5,
        measured_memory=0.25,
        last_heartbeat_at=1.0,
    )


def test_a_dead_node_is_not_shown_running(capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = ClusterSnapshot(
        monitor_id="m", seq=1, nodes=(node("up-1", alive=True), node("down-1", alive=False))
    )
    report = report_of(snapshot, {})
    by_id = {n["node_id"]: n for n in report["nodes"]}
    assert by_id["down-1"]["running"] is None
    assert by_id["down-1"]["free_slots"] is None
    render(report)
    rows = {
        line.split("│")[1].strip(): line
        for line in capsys.readouterr().out.splitlines()
        if "│" in line and "-1" in line
    }
    assert "2/2" in rows["up-1"]
    assert "2/2" not in rows["down-1"]
    assert "-/2" in rows["down-1"]
