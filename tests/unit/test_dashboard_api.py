"""The dashboard's JSON API over HTTP (in process, ASGI): answers, bad input, the token.

The monitor's state is the real one (view, handlers, metrics) driven by
heartbeats, results and alerts, as the bus would deliver them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from boson.commands.status import report_of
from boson_services.monitor.dashboard import present
from boson_services.monitor.dashboard.history import History
from boson_services.monitor.dashboard.security import RateLimiter
from boson_services.monitor.dashboard.source import DashboardSource
from boson_services.monitor.handlers import MonitorHandlers
from boson_shared.contract.messages import BalancerBacklog, NodeState
from tests.support.dashboard import asgi_client, dashboard_app
from tests.support.fakes import Clock
from tests.support.monitor import heartbeat, monitor_state

TOKEN = "s3cret-token-for-tests"


def client(
    handlers: MonitorHandlers,
    *,
    token: str | None = None,
    reading_needs_token: bool = False,
    requests_per_s: float = 1000.0,
) -> httpx.AsyncClient:
    app, _ = dashboard_app(
        handlers,
        token=token,
        reading_needs_token=reading_needs_token,
        requests_per_s=requests_per_s,
    )
    return asgi_client(app)


@pytest.fixture
async def open_api() -> AsyncIterator[tuple[httpx.AsyncClient, MonitorHandlers, Clock]]:
    handlers, clock = monitor_state()
    async with client(handlers, token=TOKEN) as http:
        yield http, handlers, clock


async def test_cluster_totals_count_every_node(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, _, _ = open_api
    answer = await http.get("/api/cluster")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["nodes"], body["up"], body["down"], body["slots"], body["running"]) == (
        3,
        3,
        0,
        12,
        6,
    )
    assert body["resources"]["cpu"] == {
        "capacity": 1200.0,
        "allocated": 300.0,
        "allocated_share": 0.25,
        "measured_share": pytest.approx(0.3),
    }
    assert body["resources"]["gpu"]["measured_share"] is None


async def test_nodes_page_filters_sorts_and_cuts(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, handlers, clock = open_api
    handlers.on_heartbeat(heartbeat("node-0001", seq=2, cpu_load=0.95))
    clock.now += 10.0  # node-0000 and node-0002 go quiet
    handlers.on_heartbeat(heartbeat("node-0001", seq=3, cpu_load=0.95))
    handlers.tick()
    down = (await http.get("/api/nodes", params={"status": "down"})).json()
    assert [n["node_id"] for n in down["nodes"]] == ["node-0000", "node-0002"]
    assert down["total"] == 2
    busiest = (await http.get("/api/nodes", params={"sort": "measured", "limit": 1})).json()
    assert busiest["nodes"][0]["node_id"] == "node-0001"
    assert busiest["total"] == 3
    second = (await http.get("/api/nodes", params={"offset": 1, "limit": 1})).json()
    assert [n["node_id"] for n in second["nodes"]] == ["node-0001"]
    searched = (await http.get("/api/nodes", params={"search": "0002"})).json()
    assert [n["node_id"] for n in searched["nodes"]] == ["node-0002"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"sort": "colour"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "many"}, "offset"),
        ({"search": "x" * 65}, "search"),
    ],
)
async def test_a_bad_filter_is_a_400_that_names_it(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
    query: dict[str, str],
    field: str,
) -> None:
    http, _, _ = open_api
    answer = await http.get("/api/nodes", params=query)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("bad request: ")
    assert f"query.{field}" in detail


async def test_alerts_show_what_is_wrong_now_and_what_was_raised(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, handlers, clock = open_api
    clock.now += 10.0
    handlers.on_heartbeat(heartbeat("node-0001", seq=2, cpu_load=0.97))
    handlers.tick()  # two nodes down
    handlers.tick()  # node-0001 overloaded (sustain 0)
    handlers.on_backlog(BalancerBacklog(pending=8, held=4))
    body = (await http.get("/api/alerts")).json()
    active = {(a["reason"], a["node_id"]) for a in body["active"]}
    assert active == {
        ("node-down", "node-0000"),
        ("node-down", "node-0002"),
        ("overload", "node-0001"),
        ("backlog", None),
    }
    recent = [a["reason"] for a in body["recent"]]
    assert recent[0] == "backlog"  # newest first
    assert sorted(recent) == ["backlog", "node-down", "node-down", "overload"]
    assert not any(a["acknowledged"] for a in body["recent"])


async def test_acknowledging_needs_the_token_and_a_known_alert(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, handlers, clock = open_api
    clock.now += 10.0
    handlers.tick()
    alert_id = (await http.get("/api/alerts")).json()["recent"][0]["alert_id"]
    path = f"/api/alerts/{alert_id}/acknowledge"

    missing = await http.post(path, json={})
    assert missing.status_code == 401
    assert "API token" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await http.post(path, json={}, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "wrong API token")
    basic = await http.post(path, json={}, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401

    good = {"Authorization": f"Bearer {TOKEN}"}
    unknown = await http.post("/api/alerts/no-such-alert/acknowledge", json={}, headers=good)
    assert (unknown.status_code, unknown.json()["detail"]) == (
        404,
        "no recent alert no-such-alert",
    )
    malformed = await http.post("/api/alerts/bad%20id!/acknowledge", json={}, headers=good)
    assert malformed.status_code == 400
    done = await http.post(path, json={"note": "seen"}, headers=good)
    assert done.status_code == 200
    assert done.json() == {"alert_id": alert_id, "acknowledged": True}
    recent = (await http.get("/api/alerts")).json()["recent"]
    assert [a["acknowledged"] for a in recent if a["alert_id"] == alert_id] == [True]


async def test_actions_are_refused_when_no_token_is_configured() -> None:
    handlers, clock = monitor_state()
    clock.now += 10.0
    handlers.tick()
    async with client(handlers, token=None) as http:
        alert_id = (await http.get("/api/alerts")).json()["recent"][0]["alert_id"]
        answer = await http.post(
            f"/api/alerts/{alert_id}/acknowledge",
            json={},
            headers={"Authorization": "Bearer anything"},
        )
    assert answer.status_code == 403
    assert "no BOSON_API_TOKEN" in answer.json()["detail"]


async def test_an_oversized_body_is_a_413() -> None:
    handlers, _ = monitor_state()
    async with client(handlers, token=TOKEN) as http:
        answer = await http.post(
            "/api/alerts/a1/acknowledge",
            content=json.dumps({"note": "x" * 5000}),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        too_long_note = await http.post(
            "/api/alerts/a1/acknowledge",
            json={"note": "x" * 600},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert answer.status_code == 413
    assert "over 1024 bytes" in answer.json()["detail"]
    assert too_long_note.status_code == 400


async def test_an_oversized_body_without_a_length_is_a_413_too() -> None:
    handlers, _ = monitor_state()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"note": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    async with client(handlers, token=TOKEN) as http:
        answer = await http.post(
            "/api/alerts/a1/acknowledge",
            content=chunks(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert answer.status_code == 413
        assert "over 1024 bytes" in answer.json()["detail"]
        assert (await http.get("/api/cluster")).status_code == 200  # still serving


async def test_beyond_loopback_reading_needs_the_token_too() -> None:
    handlers, _ = monitor_state()
    reads = (
        "/api/cluster",
        "/api/nodes",
        "/api/alerts",
        "/api/throughput",
        "/api/events",
        "/api/tenants",
        "/api/tenants/default",
        "/api/tasks",
        "/api/tasks/t1",
    )
    async with client(handlers, token=TOKEN, reading_needs_token=True) as http:
        for path in reads:
            missing = await http.get(path)
            assert missing.status_code == 401, path
            assert missing.json()["detail"] == "this needs the API token (a bearer header)"
            assert missing.headers["www-authenticate"] == 'Bearer realm="boson"'
            assert missing.headers["x-content-type-options"] == "nosniff"
            wrong = await http.get(path, headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401, path
            assert wrong.json()["detail"] == "wrong API token"
            basic = await http.get(path, headers={"Authorization": f"Basic {TOKEN}"})
            assert basic.status_code == 401, path
        good = await http.get("/api/cluster", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
        invalid = await http.get(
            "/api/nodes", params={"limit": 0}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert invalid.status_code == 400  # the token first, then the filters
        # The API's description carries no data: it stays open, like the pages.
        assert (await http.get("/api/openapi.json")).status_code == 200
        # Checked before routing: without the token, nothing tells what exists.
        assert (await http.get("/api/nope")).status_code == 401
        known = await http.get("/api/nope", headers={"Authorization": f"Bearer {TOKEN}"})
        assert known.status_code == 404
        # The page itself carries no data: it loads and asks for the token.
        page = await http.get("/")
        assert page.status_code == 200
        assert 'data-needs-token="yes"' in page.text


async def test_too_many_requests_are_a_429() -> None:
    handlers, _ = monitor_state()
    async with client(handlers, requests_per_s=2.0) as http:
        answers = [await http.get("/api/cluster") for _ in range(8)]
    codes = [answer.status_code for answer in answers]
    assert codes[:4] == [200] * 4  # the burst: twice the rate
    assert 429 in codes[4:]
    refused = answers[codes.index(429)]
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["detail"] == "too many requests: slow down"


async def test_refusals_before_the_app_carry_the_security_headers_too() -> None:
    handlers, _ = monitor_state()
    async with client(handlers, token=TOKEN, requests_per_s=1.0) as http:
        too_large = await http.post(
            "/api/alerts/a1/acknowledge",
            content=json.dumps({"note": "x" * 5000}),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        answers = [await http.get("/api/cluster") for _ in range(3)]
    too_many = answers[-1]
    assert (too_large.status_code, too_many.status_code) == (413, 429)
    for answer in (too_large, too_many):
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_rate_limiter_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, burst=2.0, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")  # per client
    now[0] += 1.0
    assert limiter.allow("a")
    assert not limiter.allow("a")


async def test_throughput_comes_from_the_monitors_counters(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, handlers, _ = open_api
    metrics = handlers.metrics
    history = History.from_metrics(metrics, interval_s=10.0)
    nodes = handlers.view.node_states(handlers.clock())
    assert history.take(nodes, 0, at=1000.0) is None  # the starting point
    for latency in (0.02, 0.04, 0.3, 0.4):
        metrics.tasks_completed.inc()
        metrics.task_latency.observe(latency)
    metrics.tasks_failed.inc()
    sample = history.take(nodes, 0, at=1010.0)
    assert sample is not None
    assert sample.succeeded_per_s == pytest.approx(0.4)
    assert sample.failed_per_s == pytest.approx(0.1)
    assert sample.latency_p50_s is not None
    assert 0.025 <= sample.latency_p50_s <= 0.1
    assert sample.latency_p99_s is not None
    assert 0.25 <= sample.latency_p99_s <= 0.5
    assert sample.allocated_cpu == pytest.approx(0.25)
    body = (await http.get("/api/throughput")).json()
    assert body["completed_total"] == 4.0
    assert body["failed_total"] == 1.0


def test_history_is_bounded() -> None:
    handlers, _ = monitor_state(nodes=1)
    metrics = handlers.metrics
    history = History(
        succeeded=metrics.tasks_completed,
        failed=metrics.tasks_failed,
        latency=metrics.task_latency,
        interval_s=10.0,
        span_s=100.0,
    )
    for step in range(50):
        history.take([], 0, at=float(step * 10))
    assert len(history.samples) == 10
    assert history.samples[0].at == 400.0


async def test_the_event_stream_pushes_summaries(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, _, _ = open_api
    async with http.stream("GET", "/api/events", params={"limit": 2}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        data = [line[6:] async for line in answer.aiter_lines() if line.startswith("data: ")]
    assert len(data) == 2
    summary = json.loads(data[0])
    assert summary["cluster"]["nodes"] == 3
    assert summary["active_alerts"] == 0


async def test_openapi_lists_every_endpoint(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, _, _ = open_api
    document = (await http.get("/api/openapi.json")).json()
    assert set(document["paths"]) == {
        "/api/cluster",
        "/api/nodes",
        "/api/tenants",
        "/api/tenants/{name}",
        "/api/alerts",
        "/api/alerts/{alert_id}/acknowledge",
        "/api/throughput",
        "/api/tasks",
        "/api/tasks/{task_id}",
        "/api/tasks/{task_id}/cancel",
        "/api/events",
    }


async def test_pages_unknown_paths_and_headers(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, _, _ = open_api
    for path in ("/", "/alerts", "/throughput"):
        page = await http.get(path)
        assert page.status_code == 200, path
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert TOKEN not in page.text
        assert "set-cookie" not in page.headers
    nav = (await http.get("/")).text
    assert 'href="/tasks"' not in nav  # not available yet: no entry
    for path in ("/tasks", "/api/nodes/node-0000", "/api/nope"):
        missing = await http.get(path)
        assert missing.status_code == 404, path
        assert missing.json()["detail"] == "no such page or endpoint"
    for asset in ("/static/app.js", "/static/style.css", "/static/vendor/uplot/uPlot.iife.min.js"):
        assert (await http.get(asset)).status_code == 200, asset


async def test_boson_status_and_the_api_never_disagree(
    open_api: tuple[httpx.AsyncClient, MonitorHandlers, Clock],
) -> None:
    http, handlers, clock = open_api
    clock.now += 10.0
    handlers.on_heartbeat(heartbeat("node-0001", seq=2))
    handlers.tick()
    report = report_of(handlers.snapshot(), {})
    assert report["nodes"] == (await http.get("/api/nodes", params={"limit": 500})).json()["nodes"]
    assert report["cluster"] == (await http.get("/api/cluster")).json()
    assert [n["status"] for n in report["nodes"]] == ["down", "up", "down"]


def test_reads_share_one_shaped_moment_for_max_age() -> None:
    handlers, _ = monitor_state(nodes=2)
    ages = Clock()
    source = DashboardSource(
        handlers,
        History.from_metrics(handlers.metrics),
        max_age_s=0.5,
        age_clock=ages,
    )
    first = source.totals()
    handlers.on_heartbeat(heartbeat("node-0009"))
    assert source.totals() is first  # within max_age: the same moment
    ages.now += 0.5
    assert source.totals().nodes == 3
    page = source.nodes(status=None, search="", sort="id", offset=0, limit=10)
    assert [n.node_id for n in page.nodes] == ["node-0000", "node-0001", "node-0009"]


def test_a_nodes_page_shapes_only_the_nodes_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Filtering and sorting run on the node states; only the page's slice is shaped."""
    handlers, _ = monitor_state(nodes=30)
    source = DashboardSource(handlers, History.from_metrics(handlers.metrics))
    shaped: list[str] = []
    shape = present.node_out

    def counted(node: NodeState) -> present.NodeOut:
        shaped.append(node.node_id)
        return shape(node)

    monkeypatch.setattr(present, "node_out", counted)
    page = source.nodes(status=None, search="", sort="measured", offset=10, limit=5)
    assert source.totals().nodes == page.total == 30
    assert shaped == [node.node_id for node in page.nodes]
    assert len(shaped) == 5
