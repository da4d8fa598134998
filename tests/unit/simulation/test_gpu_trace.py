"""The GPU trace (v2023) reader, stratified shrinking, and the report's new columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from boson.cli import main
from boson.simulation.engine import simulate
from boson.simulation.gpu_trace import parse_nodes, parse_pods
from boson.simulation.metrics import gpu_fragmentation, gpu_points, makespan_lower_bound
from boson.simulation.policies import make_policy
from boson.simulation.scale import resize_cluster, resize_for_load
from boson.simulation.trace_types import Cluster, NodeEvents, Skipped
from boson_shared.scheduling.table import NodeTable

from .conftest import cluster, events, workload

PODS = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
    """p0,12000,16384,1,460,,LS,Running,0,1000,10
p1,6000,2048,8,1000,,LS,Running,5,905,5
p2,1000,1024,0,0,,BE,Pending,7,50,
p3,1000,1024,1,1000,,BE,Failed,9,8,20
p4,2000,512,0,0,,BE,Succeeded,12,112,12
"""
)
NODES = """sn,cpu_milli,memory_mib,gpu,model
c0,32000,262144,0,
c1,32000,262144,0,
g0,96000,393216,8,G2
g1,96000,393216,8,G2
t0,104000,524288,2,T4
"""


def test_pods_units_run_times_and_the_pods_never_scheduled() -> None:
    skipped = Skipped()
    w = parse_pods(PODS.splitlines(keepends=True), skipped)
    assert w.tasks == 3
    # Half of one GPU is 0.46 of a device; eight whole GPUs are 8.
    expected = np.array([[12, 16, 0.46], [6, 2, 8], [2, 0.5, 0]], np.float64)
    np.testing.assert_allclose(w.demand, expected)
    # Run time = deletion − scheduled; arrival = creation.
    assert w.submit.tolist() == [0, 5, 12]
    assert w.duration.tolist() == [990, 900, 100]
    assert w.instances.tolist() == [1, 1, 1]
    assert w.jobs == 3
    assert dict(skipped.rows) == {"never scheduled": 1, "end before start": 1}
    nodes = parse_nodes(NODES.splitlines(keepends=True), Skipped())
    assert nodes.node_ids == ("c0", "c1", "g0", "g1", "t0")
    assert nodes.capacity[2].tolist() == [96, 384, 8]


def test_shrinking_keeps_the_mix_of_node_shapes_not_the_first_rows() -> None:
    # Ten CPU-only nodes first, then ten 8-GPU nodes: half of it is five of each.
    capacity = np.array([[32, 256, 0]] * 10 + [[96, 384, 8]] * 10, np.float64)
    c = Cluster(tuple(f"n{i}" for i in range(20)), capacity)
    half, _ = resize_cluster(c, NodeEvents.empty(), 10)
    assert half.capacity[:, 2].tolist() == [0] * 5 + [8] * 5
    # Within a shape, machines with events are kept first.
    ev = events((5, 17, False), (10, 17, True))
    small, moved = resize_cluster(c, ev, 2)
    assert small.node_ids == ("n0", "n17")
    assert moved.node.tolist() == [1, 1]


def test_whole_nodes_that_miss_the_target_load_are_reported() -> None:
    # GPU work 8 GPUs × 100 s over 100 s: one 8-GPU node is load 1.0, two 0.5.
    w = workload([(0, 100, 1, 1, 1, 0), (100, 1, 1, 1, 1, 1)])
    w.demand[0, 2] = 8.0
    capacity = np.array([[32, 256, 0]] * 4 + [[96, 384, 8]] * 4, np.float64)
    c = Cluster(tuple(f"n{i}" for i in range(8)), capacity)
    exact = resize_for_load(w, c, NodeEvents.empty(), 1.0)
    assert exact.load == pytest.approx(1.0)
    assert exact.warning() is None
    assert exact.cluster.capacity[:, 2].tolist() == [0, 8]
    off = resize_for_load(w, c, NodeEvents.empty(), 0.7)
    assert off.load in (pytest.approx(1.0), pytest.approx(0.5))
    assert off.warning() is not None


def test_the_report_has_the_longest_delay_size_classes_never_and_gpu() -> None:
    # One (2, 2) node. A (2, 2) task for 10 s at 0, a (1, 1) at 1 (waits 9 s),
    # a (3, 3) that fits no node, and a (0.1, 0.1) at 2 (waits 8 s).
    w = workload(
        [(0, 10, 2, 2, 1, 0), (1, 5, 1, 1, 1, 1), (1, 5, 3, 3, 2, 2), (2, 1, 0.1, 0.1, 1, 3)]
    )
    policy = make_policy("binpack")
    m, _ = simulate("b", w, cluster((2, 2)), events(), policy.placer, policy.drainer(), 1.0)
    assert m.delay_max == 9.0
    assert (m.never_fits, m.never_placed, m.never_placeable) == (2, 0, 2)
    # Shares of the node: 1 (large), 0.5 (medium), 0.05 (small).
    assert m.delay_p99_by_size == {"small": 8.0, "medium": 9.0, "large": 0.0}
    # The makespan bound leaves out the work that never ran.
    ran = np.array([True, True, False, True])
    assert m.makespan_bound == makespan_lower_bound(w, cluster((2, 2)).capacity, ran)
    assert m.makespan_bound < makespan_lower_bound(w, cluster((2, 2)).capacity)
    assert len(m.utilisation) == 3


def test_simulate_reads_the_gpu_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pods.csv").write_text(PODS)
    (tmp_path / "nodes.csv").write_text(NODES)
    files = ["--tasks", str(tmp_path / "pods.csv"), "--nodes", str(tmp_path / "nodes.csv")]
    args = ["simulate", "--format", "alibaba-gpu-v2023", *files, "--strategy", "binpack-fgd"]
    assert main([*args, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (result,) = payload["results"]
    assert payload["skipped"]["never scheduled"] == [1, 1]
    for key in ("delay_max", "delay_p99_by_size", "never_fits", "never_placed", "utilisation"):
        assert key in result
    assert result["utilisation"][2] > 0
    # No cluster cut from five nodes is offered 1000 times its capacity.
    assert main([*args, "--target-load", "1000"]) == 0
    out, err = capsys.readouterr()
    assert "util gpu" in out
    assert "whole nodes give an offered load" in err


def test_gpu_fragmentation_is_weng_et_als_per_device() -> None:
    # One 8-GPU node, half of one device held. A typical task asking one
    # whole GPU cannot use that device's idle half: 500 of 8000 milli-units.
    table = NodeTable()
    table.upsert("g", (96.0, 384.0, 8.0))
    table.allocate(0, (1.0, 1.0, 0.5))
    whole = np.array([[1.0, 1.0, 1.0]])
    assert gpu_fragmentation(table, np.ones(1, np.bool_), whole) == pytest.approx(500 / 8000)
    # A task asking no GPU can use none of it: all 7500 idle are fragment.
    none = np.array([[1.0, 1.0, 0.0]])
    assert gpu_fragmentation(table, np.ones(1, np.bool_), none) == pytest.approx(7500 / 8000)
    # Typical tasks are quantiles of the instances' demands.
    w = workload([(0, 1, 1, 1, 3, 0), (0, 1, 1, 1, 1, 1)])
    w.demand[1, 2] = 0.5
    points = gpu_points(w)
    assert points.shape == (16, 3)
    assert (points[:, 2] == 0.5).sum() == 4
