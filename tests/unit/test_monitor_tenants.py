"""The monitor's side of tenants: the latest report in its view, per-tenant gauges,
and ``boson tenants``' table of it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from boson.commands.tenants import render
from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.view import ClusterView
from boson_shared.contract.topology import Names
from tests.support.tenants import BATCH, RESEARCH, report


def monitor() -> MonitorHandlers:
    return MonitorHandlers(
        ClusterView(down_after_s=1.0),
        MonitorMetrics(),
        Names(namespace="m"),
        "m-1",
        backlog_alert_threshold=100,
    )


def samples(handlers: MonitorHandlers) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = handlers.metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("boson_tenant")
    }


def value(handlers: MonitorHandlers, name: str, **labels: str) -> float | None:
    return samples(handlers).get((name, tuple(sorted(labels.items()))))


def test_a_report_becomes_per_tenant_gauges() -> None:
    handlers = monitor()
    handlers.on_tenants(report(1, RESEARCH, BATCH))

    def research(name: str, resource: str) -> float | None:
        return value(handlers, name, tenant="research", resource=resource)

    assert research("boson_tenant_usage_units", "cpu") == 40.0
    assert research("boson_tenant_usage_units", "gpu") == 0.0  # not named: none used
    assert research("boson_tenant_quota_units", "gpu") == 4.0
    assert research("boson_tenant_guarantee_units", "gpu") == 2.0
    assert research("boson_tenant_borrowed_units", "cpu") == 8.0
    assert research("boson_tenant_pending_units", "gpu") == 1.0
    assert research("boson_tenant_borrowing_limit_units", "cpu") == 16.0
    # No limit on memory: no series, rather than a number that would read as one.
    assert research("boson_tenant_borrowing_limit_units", "memory") is None
    assert value(handlers, "boson_tenant_waiting_tasks", tenant="research") == 3
    assert value(handlers, "boson_tenant_running_tasks", tenant="batch") == 2
    assert value(handlers, "boson_tenant_preempted_tasks", tenant="research") == 1
    assert value(handlers, "boson_tenant_weight", tenant="research") == 2
    assert value(handlers, "boson_tenant_dominant_share", tenant="research") == 0.625
    assert value(handlers, "boson_tenants_pool_units", resource="memory") == 256.0
    assert value(handlers, "boson_tenants_report_timestamp_seconds") == 1_001.0
    # batch has no quota and no guarantee: quota 0, no guarantee series.
    assert value(handlers, "boson_tenant_quota_units", tenant="batch", resource="cpu") == 0.0
    assert value(handlers, "boson_tenant_guarantee_units", tenant="batch", resource="cpu") is None


def test_a_tenant_the_next_report_leaves_out_loses_its_series() -> None:
    handlers = monitor()
    handlers.on_tenants(report(1, RESEARCH, BATCH))
    handlers.on_tenants(report(2, BATCH.model_copy(update={"running": 5})))
    assert not [key for key in samples(handlers) if ("tenant", "research") in key[1]]
    assert value(handlers, "boson_tenant_running_tasks", tenant="batch") == 5


def test_the_view_keeps_the_newest_report_of_a_balancer_and_whatever_another_says() -> None:
    handlers = monitor()
    assert handlers.view.tenants() is None
    newer, older = report(5, RESEARCH), report(4, BATCH)
    handlers.on_tenants(newer)
    handlers.on_tenants(older)  # redelivered late: changes nothing
    assert handlers.view.tenants() == newer
    assert value(handlers, "boson_tenant_running_tasks", tenant="batch") is None
    # A standby took over: its own sequence starts again.
    taken_over = report(1, BATCH, balancer="bal-2")
    handlers.on_tenants(taken_over)
    assert handlers.view.tenants() == taken_over
    assert value(handlers, "boson_tenant_running_tasks", tenant="batch") == 2


def test_the_table_shows_usage_against_quota_borrowing_and_pending() -> None:
    console = Console(width=80, record=True, color_system=None)
    console.print(render(report(1, RESEARCH, BATCH), now=1_003.5))
    text = console.export_text()
    assert "pool: cpu 64  memory 256  gpu 4; preemption grace 30 s" in text
    assert "reported by bal-1 2.5 s ago" in text
    rows = [line.split() for line in text.splitlines()]
    at = rows.index(["research", "2", "yes", "10", "3", "cpu", "40", "32", "8", "-"])
    # One row per resource it has a quota of, uses, borrows or waits for.
    assert rows[at + 1] == ["memory", "64", "128", "-", "-"]
    assert rows[at + 2] == ["gpu", "0", "4", "(2)", "-", "1"]  # the pool shrank its guarantee
    assert ["batch", "1", "no", "2", "0", "cpu", "4", "0", "-", "-"] in rows
    assert not [row for row in rows if row[:1] == ["memory"] and row != rows[at + 1]]
