"""Loaders: units, unusable rows counted by reason, events merged and sorted."""

from __future__ import annotations

import io

import numpy as np
import pytest

from boson.simulation.alibaba_v2017 import parse_alibaba_servers, parse_alibaba_tasks
from boson.simulation.csv_trace import parse_csv_events, parse_csv_nodes, parse_csv_tasks
from boson.simulation.trace_parsing import TraceFormatError
from boson.simulation.trace_types import Skipped
from boson_shared.scheduling.amounts import GRID_STEP

ALIBABA_TASKS = """\
task_create_time,task_end_time,job_id,task_id,number_of_instances,status,plan_cpu,plan_mem
10,70,7,1,3,Terminated,50,0.01
12,12,7,2,1,Terminated,100,0.02
20,30,8,3,5,Waiting,,
20,10,9,4,2,Terminated,50,0.01
25,40,9,5,4,Terminated,,0.01
30,90,9,6,6,Running,50,0.01
31,80,9,7,2,Failed,50,0.01
"""

ALIBABA_SERVERS = """timestamp,machine_id,event_type,event_detail,cpus,mem_norm,disk_norm
0,m1,add,,64,0.69,1
0,m2,add,,64,1.0,1
100,m1,softerror,machine_fail,0,0,0
400,m1,softerror,agent_check,0,0,0
5000,m2,softerror,disk_full,0,0,0
6000,m9,softerror,disk_full,0,0,0
"""


def test_alibaba_tasks_units_and_counted_rows() -> None:
    skipped = Skipped()
    w = parse_alibaba_tasks(io.StringIO(ALIBABA_TASKS), skipped)
    assert w.tasks == 2
    np.testing.assert_allclose(w.submit, [10, 12])
    np.testing.assert_allclose(w.duration, [60, 0])  # same-second Terminated rows are kept
    # 100 = 1 core; CPU and memory on the books' grid (within half a step).
    np.testing.assert_allclose(w.demand, [[0.5, 0.01, 0.0], [1.0, 0.02, 0.0]], atol=GRID_STEP / 2)
    assert w.instances.tolist() == [3, 1]
    assert w.job.tolist() == [0, 0]
    assert dict(skipped.rows) == {
        "status Waiting": 1,
        "end before start": 1,
        "empty request": 1,
        "status Running": 1,
        "status Failed": 1,
    }
    assert skipped.instances["status Waiting"] == 5
    assert skipped.instances["end before start"] == 2
    assert skipped.instances["empty request"] == 4
    assert skipped.total_rows == 5


def test_alibaba_servers_capacity_and_merged_outages() -> None:
    skipped = Skipped()
    cluster, events = parse_alibaba_servers(io.StringIO(ALIBABA_SERVERS), skipped)
    assert cluster.node_ids == ("m1", "m2")
    np.testing.assert_allclose(cluster.capacity, [[64, 0.69, 0], [64, 1.0, 0]], atol=GRID_STEP / 2)
    # m1: 100..700 and 400..1000 overlap → one outage 100..1000; m2: 5000..5600.
    assert events.time.tolist() == [100, 1000, 5000, 5600]
    assert events.node.tolist() == [0, 0, 1, 1]
    assert events.up.tolist() == [False, True, False, True]
    assert skipped.rows["event for unknown machine"] == 1


def test_csv_formats() -> None:
    skipped = Skipped()
    tasks = parse_csv_tasks(
        io.StringIO(
            "submit_time,duration,cpu,memory,gpu,job_id,instances\n"
            "0,10,1,2,,a,2\n"
            "5,3,1,1,1,a,\n"
            "6,-1,1,1,,b,1\n"
            "7,1,,1,,b,1\n"
        ),
        skipped,
    )
    assert tasks.tasks == 2
    assert tasks.instances.tolist() == [2, 1]
    np.testing.assert_allclose(tasks.demand, [[1, 2, 0], [1, 1, 1]])
    assert tasks.job.tolist() == [0, 0]
    assert dict(skipped.rows) == {"end before start": 1, "empty request": 1}
    nodes = parse_csv_nodes(io.StringIO("node_id,cpu,memory\nn1,4,8\nn2,2,2\n"), skipped)
    assert nodes.node_ids == ("n1", "n2")
    events = parse_csv_events(
        io.StringIO("time,node_id,event\n9,n2,up\n3,n2,down\n4,zz,down\n5,n1,sideways\n"),
        nodes,
        skipped,
    )
    assert events.time.tolist() == [3, 9]
    assert events.up.tolist() == [False, True]
    assert skipped.rows["event for unknown machine"] == 1
    assert skipped.rows["unusable event"] == 1


def test_missing_column_is_a_format_error() -> None:
    with pytest.raises(TraceFormatError, match="memory"):
        parse_csv_tasks(io.StringIO("submit_time,duration,cpu\n0,1,1\n"), Skipped())
