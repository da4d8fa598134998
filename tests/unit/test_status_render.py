"""``boson status``: a dead node shows no stale load."""

from __future__ import annotations

import pytest

from boson.commands.status import render


def node(node_id: str, *, alive: bool) -> dict[str, object]:
    return {
        "node_id": node_id,
        "alive": alive,
        "slots": 2,
        "running": 2 if alive else None,
        "free_slots": 0 if alive else None,
        "allocated_utilisation": 0.5,
        "measured_cpu": 0.5,
        "measured_memory": 0.25,
    }


def test_a_dead_node_is_not_shown_running(capsys: pytest.CaptureFixture[str]) -> None:
    render(
        {
            "nodes": [node("up-1", alive=True), node("down-1", alive=False)],
            "backlog": 0,
            "queues": {},
        }
    )
    rows = {
        line.split("│")[1].strip(): line
        for line in capsys.readouterr().out.splitlines()
        if "│" in line and "-1" in line
    }
    assert "2/2" in rows["up-1"]
    assert "2/2" not in rows["down-1"]
    assert "-/2" in rows["down-1"]
