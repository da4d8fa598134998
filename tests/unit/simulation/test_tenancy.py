"""The simulator with tenants: admission in front of placement, on tiny traces."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from boson.cli import main
from boson.simulation.alibaba_v2017 import parse_alibaba_tasks
from boson.simulation.csv_trace import parse_csv_tasks
from boson.simulation.fairness import TenantRecorder, jain, report
from boson.simulation.policies import make_policy
from boson.simulation.tenancy import (
    Tenancy,
    alibaba_v2017_tenants,
    proportional_quotas,
    run_policy,
    trace_tenants,
)
from boson.simulation.trace_types import Skipped
from tests.unit.simulation.conftest import cluster, events, workload

PLACER = make_policy("binpack-fgd").placer


def test_the_alibaba_rule() -> None:
    text = (
        "task_create_time,task_end_time,job_id,task_id,number_of_instances,status,"
        "plan_cpu,plan_mem\n"
    )
    for job in (0, 4, 6, 7, 20, 13):
        text += f"0,10,{job},1,1,Terminated,100,0.1\n"
    w = parse_alibaba_tasks(io.StringIO(text), Skipped())
    rule = alibaba_v2017_tenants(w)
    assert rule.tenant == ("a", "b", "c", "d", "b", "b")
    assert rule.priority.tolist() == [100, 0, 0, 0, 100, 0]


def test_csv_tenant_and_priority_columns() -> None:
    text = (
        "submit_time,duration,cpu,memory,tenant,priority\n"
        "0,1,1,1,team,5\n0,1,1,1,,\n0,1,1,1,team,2000\n0,1,1,1,team,high\n"
    )
    skipped = Skipped()
    w = parse_csv_tasks(io.StringIO(text), skipped)
    assert w.tenant == ("team", "default")
    assert w.priority is not None
    assert w.priority.tolist() == [5, 0]
    assert skipped.rows["bad priority"] == 2
    assert trace_tenants(w).tenant == ("team", "default")


def test_jain() -> None:
    assert jain(np.asarray([1.0, 1.0])) == 1.0
    assert jain(np.asarray([1.0, 0.0])) == 0.5


def two_tenants(rows: list[tuple[float, float, float, float, int, int]], owners: str) -> Tenancy:
    assert len(rows) == len(owners)
    return Tenancy(tuple(owners), np.zeros(len(rows), np.int64))


def test_a_tenant_that_starts_later_reclaims_its_quota_by_preemption() -> None:
    # b fills both nodes with long tasks; a (half the pool, may preempt)
    # submits at 100 s and holds half the pool once the grace period ends.
    rows = [(0.0, 1000.0, 1.0, 1.0, 8, 0), (100.0, 50.0, 1.0, 1.0, 4, 1)]
    w = workload(rows)
    nodes = cluster((4, 4), (4, 4))
    config = proportional_quotas({"a": 1.0, "b": 1.0}, (8.0, 8.0, 0.0))
    tenancy = two_tenants(rows, "ba")
    report, metrics = run_policy(
        "boson", w, nodes, events(), tenancy, config, PLACER, grace_s=30.0, sample_step=50.0
    )
    assert report.preempted == 4
    reach = dict(zip(report.tenants, report.reach_worst, strict=True))
    assert reach["a"] == pytest.approx(30.0)
    assert report.below_worst == pytest.approx(30.0)
    # Without borrowing b never had the room to lose; with FIFO a waits for b.
    fifo, _ = run_policy("fifo", w, nodes, events(), tenancy, config, PLACER, sample_step=50.0)
    assert fifo.preempted == 0
    assert dict(zip(fifo.tenants, fifo.reach_worst, strict=True))["a"] == pytest.approx(900.0)
    strict, _ = run_policy("strict", w, nodes, events(), tenancy, config, PLACER, sample_step=50.0)
    assert dict(zip(strict.tenants, strict.reach_worst, strict=True))["a"] == 0.0
    # Every instance ran to its end, the preempted ones after a restart.
    assert metrics.never_placeable == 0


def test_priority_goes_first_within_a_tenant_and_not_under_fifo() -> None:
    rows = [
        (0.0, 100.0, 1.0, 1.0, 1, 0),  # fills the node
        (1.0, 10.0, 1.0, 1.0, 1, 1),  # low
        (2.0, 10.0, 1.0, 1.0, 1, 2),  # high
    ]
    w = workload(rows)
    nodes = cluster((1, 1))
    config = proportional_quotas({"a": 1.0}, (1.0, 1.0, 0.0))
    tenancy = Tenancy(("a", "a", "a"), np.asarray([0, 0, 100]))
    boson, _ = run_policy("boson", w, nodes, events(), tenancy, config, PLACER)
    fifo, _ = run_policy("fifo", w, nodes, events(), tenancy, config, PLACER)
    assert boson.p99_delay[100] == pytest.approx(98.0)
    assert fifo.p99_delay[100] == pytest.approx(108.0)


def test_shares_follow_weights_while_all_are_backlogged() -> None:
    # Two tenants, weights 3:1, each with far more short tasks than the pool
    # holds: while both wait, a holds three quarters and b one quarter.
    rows = [(0.0, 10.0, 1.0, 1.0, 1, k) for k in range(400)]
    w = workload(rows)
    nodes = cluster((4, 4), (4, 4))
    config = proportional_quotas({"a": 3.0, "b": 1.0}, (8.0, 8.0, 0.0))
    tenancy = two_tenants(rows, "ab" * 200)
    report, _ = run_policy("boson", w, nodes, events(), tenancy, config, PLACER, sample_step=5.0)
    assert report.share == pytest.approx((0.75, 0.25), abs=0.01)
    assert report.jain > 0.99
    fifo, _ = run_policy("fifo", w, nodes, events(), tenancy, config, PLACER, sample_step=5.0)
    assert fifo.share == pytest.approx((0.5, 0.5))
    assert fifo.jain < 0.9


def write_tenant_trace(directory: Path) -> list[str]:
    tasks = directory / "tasks.csv"
    tasks.write_text(
        "submit_time,duration,cpu,memory,instances,tenant,priority\n"
        "0,100,1,1,4,batch,0\n10,10,1,1,2,research,100\n"
    )
    nodes = directory / "nodes.csv"
    nodes.write_text("node_id,cpu,memory\nn0,2,2\nn1,2,2\n")
    return ["simulate", "--format", "csv", "--tasks", str(tasks), "--nodes", str(nodes)]


TENANTS = """
[tenants.research]
quota = { cpu = 2, memory = 2 }
may_preempt = true
[tenants.batch]
quota = { cpu = 2, memory = 2 }
"""


def test_simulate_with_a_tenants_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tenants.toml").write_text(TENANTS)
    args = [*write_tenant_trace(tmp_path), "--tenants", str(tmp_path / "tenants.toml")]
    assert main([*args, "--preempt-grace-s", "5", "--json"]) == 0
    reports = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(reports) == {"boson", "fifo", "strict"}
    assert reports["boson"]["preempted"] == 2
    assert reports["boson"]["p99_delay_s"]["100"] == 5.0
    assert reports["fifo"]["p99_delay_s"]["100"] == 90.0
    assert main(args) == 0
    assert "tenants: shares" in capsys.readouterr().out


def test_simulate_refuses_a_trace_tenant_the_file_does_not_declare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tenants.toml").write_text("[tenants.research]\n")
    args = [*write_tenant_trace(tmp_path), "--tenants", str(tmp_path / "tenants.toml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "batch" in err
    assert "Traceback" not in err


def test_simulate_refuses_an_invalid_tenants_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tenants.toml").write_text("[tenants.research]\nquota = { cpu = -1 }\n")
    args = [*write_tenant_trace(tmp_path), "--tenants", str(tmp_path / "tenants.toml")]
    assert main(args) == 2
    assert "tenants.research.quota.cpu" in capsys.readouterr().err


def test_short_while_backlogged_counts_each_tenants_own_backlogged_samples() -> None:
    # x waits from 0 s: at 100 s it holds nothing (short), at 110 s its
    # entitlement (not short). y asks for less than its entitlement and
    # holds 95 % of it: never short. z never waits: no such samples.
    rec = TenantRecorder.create(("x", "y", "z"), {"x": 0.4, "y": 0.4, "z": 0.2})
    rec.submitted("x", 0.0, 8.0)
    rec.submitted("y", 0.0, 2.0)
    rec.started("y", 1.9)
    rec.sample(100.0, 10.0)
    rec.started("x", 4.0)
    rec.sample(110.0, 10.0)
    out = report("p", rec, 0.5)
    assert out.own_backlogged_samples == (2, 2, 0)
    assert out.short_while_backlogged[0] == pytest.approx(0.5)
    assert out.short_while_backlogged[1] == 0.0
    assert out.short_while_backlogged[2] != out.short_while_backlogged[2]  # NaN: none
    assert out.backlogged_samples == 0  # z never waited: never all backlogged
