"""The ready-made monitoring in deploy/monitoring, held to the metrics the monitor exports.

Both files parse (YAML rules in Prometheus's shape, Grafana's dashboard
JSON), every ``boson_*`` series they query is one the monitor's registry
exposes (a gauge by its name; a counter as ``_total``; a histogram as
``_bucket``, ``_count``, ``_sum``), every label they group or match on is
one those series carry, and compose runs them in its ``monitoring`` profile.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.view import ClusterView
from boson_shared.contract.messages import BalancerBacklog
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage
from boson_shared.contract.topology import Names
from tests.support.monitor import heartbeat
from tests.unit.deploy_files import COMPOSE, DEPLOY

MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "alerts.yml"
GRAFANA_DASHBOARD = MONITORING / "grafana" / "dashboards" / "boson.json"
SERIES = re.compile(r"\b(boson_[a-z0-9_]+)\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"\{([^}]*)\}")
TEMPLATE_LABEL = re.compile(r"\$labels\.([a-z_]+)")


def exported() -> dict[str, set[str]]:
    """Every series name the monitor exposes, with the labels it carries.

    The monitor is fed one of everything it counts, so that each labelled
    family has a sample to show its labels by (``collect()``, the public way).
    """
    metrics = MonitorMetrics()
    handlers = MonitorHandlers(
        ClusterView(down_after_s=1.0),
        metrics,
        Names(namespace="m"),
        "m-1",
        backlog_alert_threshold=1,
    )
    handlers.on_heartbeat(heartbeat("node-1"))
    handlers.on_backlog(BalancerBacklog(pending=1, held=1))  # and a backlog alert
    handlers.snapshot()
    metrics.queue_depth.labels("q").set(1)
    every = {"cpu": 1.0}
    tenant = TenantUsage(
        name="t",
        weight=1,
        may_preempt=False,
        quota=every,
        guarantee=every,
        borrowing_limit=every,
        usage=every,
        borrowed=every,
        pending=every,
    )
    handlers.on_tenants(TenantsReport(balancer_id="b", seq=1, pool=every, tenants=(tenant,)))
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        assert family.samples, f"{family.name} has no sample: feed it above"
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                series.setdefault(sample.name, set()).update(sample.labels)
    return series


def rule_expressions() -> list[tuple[str, str]]:
    document: dict[str, Any] = yaml.safe_load(RULES.read_text())
    found = []
    for group in document["groups"]:
        assert group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            text = " ".join(str(v) for v in rule.get("annotations", {}).values())
            found.append((rule["alert"], f"{rule['expr']} {text}"))
    return found


def dashboard_expressions() -> list[tuple[str, str]]:
    board: dict[str, Any] = json.loads(GRAFANA_DASHBOARD.read_text())
    assert board["uid"]
    assert board["title"]
    found = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            found.append((panel["title"], f"{target['expr']} {target.get('legendFormat', '')}"))
    return found


def check(where: str, expression: str, series: dict[str, set[str]]) -> None:
    named = SERIES.findall(expression)
    unknown = [name for name in named if name not in series]
    assert not unknown, f"{where}: the monitor exports no {unknown}"
    labels = set().union(*(series[name] for name in named)) if named else set()
    used = {
        label.strip()
        for group in GROUPING.findall(expression)
        for label in group.split(",")
        if label.strip()
    }
    used |= {
        matcher.split("=")[0].strip().rstrip("!~")
        for block in MATCHER.findall(expression)
        for matcher in block.split(",")
        if "=" in matcher
    }
    used |= set(TEMPLATE_LABEL.findall(expression))
    used |= set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", expression)) - {"value"}
    if named:
        assert used <= labels | {"job"}, f"{where}: labels {used - labels} not on {named}"


def test_every_alerting_rule_queries_metrics_the_monitor_exports() -> None:
    series = exported()
    rules = rule_expressions()
    assert {name for name, _ in rules} >= {"BosonNodeDown", "BosonNodeOverloaded", "BosonBacklog"}
    for name, expression in rules:
        check(f"rule {name}", expression, series)


def test_every_grafana_panel_queries_metrics_the_monitor_exports() -> None:
    series = exported()
    panels = dashboard_expressions()
    assert len(panels) >= 10
    for title, expression in panels:
        check(f"panel {title!r}", expression, series)


def test_the_check_catches_a_metric_the_monitor_does_not_export() -> None:
    series = exported()
    with pytest.raises(AssertionError, match="boson_tasks_completed"):
        check("made up", "rate(boson_tasks_completed[5m])", series)  # no _total
    with pytest.raises(AssertionError, match="tenant"):
        check("made up", "sum by (tenant) (boson_node_alive)", series)


def test_compose_runs_prometheus_and_grafana_with_these_files() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    mounted: set[Path] = set()
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            mounted.add((COMPOSE.parent / volume.split(":")[0]).resolve())
    assert RULES.resolve() in mounted
    assert GRAFANA_DASHBOARD.parent.resolve() in mounted
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["monitor:8080"]
