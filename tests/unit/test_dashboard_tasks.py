"""The dashboard's task endpoints over HTTP (in process, ASGI) on a real task record.

``/api/tasks`` and ``/api/tasks/{id}`` read the record through the function
that answers ``boson tasks`` over the bus, so the two are compared here
record for record; every bad input gets a clear status and one line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from boson_services.monitor.dashboard.tasks import (
    PREVIEW_MAX_CHARS,
    Preview,
    _indented_start,
    placement,
    preview,
)
from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.record import answer
from boson_shared.contract.messages import (
    NodeScore,
    PlacementExplanation,
    RecordQuery,
    ResourceVector,
    TaskPlaced,
    TaskRecord,
    TaskSubmitted,
)
from boson_shared.record.store import RecordStore
from tests.support.dashboard import asgi_client, dashboard_app
from tests.support.monitor import monitor_state
from tests.unit.record.events import lifecycle

TOKEN = "tasks-test-token"


@dataclass
class RecordingCanceller:
    """A :class:`Canceller` that remembers what it was asked."""

    asked: list[list[str]] = field(default_factory=list)

    async def cancel(self, task_ids: Sequence[str]) -> None:
        self.asked.append(list(task_ids))


def dashboard(
    handlers: MonitorHandlers,
    store: RecordStore | None,
    *,
    token: str | None = TOKEN,
    canceller: RecordingCanceller | None = None,
    reading_needs_token: bool = False,
) -> httpx.AsyncClient:
    app, _ = dashboard_app(
        handlers,
        store=store,
        canceller=canceller,
        token=token or None,
        reading_needs_token=reading_needs_token,
    )
    return asgi_client(app)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RecordStore]:
    store = RecordStore.open(f"sqlite:///{tmp_path}/records.sqlite3", inline_max_bytes=64 * 1024)
    await store.migrate()
    events = []
    for number in range(12):
        events += lifecycle(
            f"task-{number:02d}",
            outcome="failed" if number % 4 == 3 else "succeeded",
            node_id="n1" if number % 2 else "n2",
            handler="echo" if number < 6 else "sum",
            submitted_at=1_000.0 + number,
        )
    # One still running: placed, assigned and started, no outcome yet.
    events += lifecycle("task-running", submitted_at=2_000.0)[:3]
    await store.ingest(events)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def http(store: RecordStore) -> AsyncIterator[httpx.AsyncClient]:
    handlers, _ = monitor_state()
    async with dashboard(handlers, store) as client:
        yield client


async def test_the_list_is_newest_first_and_pages_by_cursor(http: httpx.AsyncClient) -> None:
    first = await http.get("/api/tasks", params={"limit": 5})
    assert first.status_code == 200
    body = first.json()
    assert [t["task_id"] for t in body["tasks"]] == [
        "task-running",
        "task-11",
        "task-10",
        "task-09",
        "task-08",
    ]
    assert all(t["output"] is None for t in body["tasks"])  # outputs one task at a time
    seen = [t["task_id"] for t in body["tasks"]]
    cursor = body["next_cursor"]
    while cursor is not None:
        page = (await http.get("/api/tasks", params={"limit": 5, "cursor": cursor})).json()
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 13


async def test_filters_narrow_the_list(http: httpx.AsyncClient) -> None:
    async def ids(**params: str | float) -> list[str]:
        answer = await http.get("/api/tasks", params=params)
        assert answer.status_code == 200, answer.text
        return [t["task_id"] for t in answer.json()["tasks"]]

    assert await ids(state="failed") == ["task-11", "task-07", "task-03"]
    assert await ids(state="started") == ["task-running"]
    assert await ids(handler="sum", node="n2") == ["task-10", "task-08", "task-06"]
    assert await ids(since=1_009.0, until=1_011.0) == ["task-10", "task-09"]
    assert await ids(handler="nobody") == []


async def test_the_page_and_boson_tasks_never_disagree(
    http: httpx.AsyncClient, store: RecordStore
) -> None:
    """``boson tasks`` over the bus is answered by ``record.answer``: the same records."""
    over_bus = await answer(store, RecordQuery(reply_to="cli", handler="echo", limit=4))
    page = (await http.get("/api/tasks", params={"handler": "echo", "limit": 4})).json()
    assert page["tasks"] == [r.model_dump(mode="json") for r in over_bus.records]
    assert page["next_cursor"] == over_bus.next_cursor
    one = await answer(store, RecordQuery(reply_to="cli", task_id="task-03"))
    shown = (await http.get("/api/tasks/task-03")).json()["record"]
    assert shown == one.records[0].model_copy(update={"output": None}).model_dump(mode="json")


async def test_one_task_has_its_timeline_use_preview_and_placement(
    http: httpx.AsyncClient,
) -> None:
    answer_ = await http.get("/api/tasks/task-04")
    assert answer_.status_code == 200
    task = answer_.json()
    record = task["record"]
    assert [e["stage"] for e in record["timeline"]] == [
        "submitted",
        "placed",
        "assigned",
        "started",
        "succeeded",
    ]
    assert {e["node_id"] for e in record["timeline"][1:]} == {"n2"}
    assert task["terminal"] is True
    assert task["duration_s"] == pytest.approx(1.0)
    use = {line["resource"]: line for line in task["use"]}
    assert (use["cpu"]["demand"], use["cpu"]["measured"]) == (1.0, pytest.approx(0.4))
    assert use["memory"]["measured"] == pytest.approx(1000 / 2**20)
    assert use["gpu"]["measured"] is None
    assert task["preview"]["kind"] == "inline"
    assert '"task": "task-04"' in task["preview"]["text"]
    assert task["placement"]["summary"].startswith("placed on n2 by the binpack strategy")
    assert task["placement"]["placed_on"] == "n2"
    assert task["placement"]["explanation"] is None

    failed = (await http.get("/api/tasks/task-03")).json()
    assert failed["record"]["error"]["error_type"] == "ValueError"
    assert failed["preview"]["kind"] == "none"
    running = (await http.get("/api/tasks/task-running")).json()
    assert (running["terminal"], running["duration_s"]) == (False, None)


async def test_a_large_result_is_cut_in_the_preview(tmp_path: Path) -> None:
    store = RecordStore.open(f"sqlite:///{tmp_path}/big.sqlite3", inline_max_bytes=64 * 1024)
    await store.migrate()
    await store.ingest(lifecycle("big", output={"text": "x" * 10_000}))
    handlers, _ = monitor_state()
    try:
        async with dashboard(handlers, store) as http:
            preview = (await http.get("/api/tasks/big")).json()["preview"]
    finally:
        await store.close()
    assert preview["truncated"] is True
    whole = json.dumps({"text": "x" * 10_000}, indent=2)
    assert preview["text"] == whole[:PREVIEW_MAX_CHARS]
    assert preview["size_bytes"] == len(json.dumps({"text": "x" * 10_000}, separators=(",", ":")))


def test_a_preview_indents_no_more_of_the_result_than_it_shows() -> None:
    """A large inline result costs the dashboard's thread its preview, not an
    indented encoding of all of it (written in Python, many times slower
    than the compact one that gives its size)."""
    indented: list[int] = []

    class Item:
        def __repr__(self) -> str:
            indented.append(1)
            return "item"

    text, whole = _indented_start([Item() for _ in range(10_000)], PREVIEW_MAX_CHARS)
    assert (len(text), whole) == (PREVIEW_MAX_CHARS, False)
    assert len(indented) < 300  # about what the shown part holds, not 10,000
    assert _indented_start([1, 2], PREVIEW_MAX_CHARS) == ("[\n  1,\n  2\n]", True)
    record = TaskRecord(task_id="t", state="succeeded", submitted_at=1.0, output=[1, 2])
    assert preview(record) == Preview(kind="inline", text="[\n  1,\n  2\n]", size_bytes=12)


async def test_a_task_submitted_with_explain_shows_every_nodes_score(
    store: RecordStore,
) -> None:
    handlers, _ = monitor_state()
    scores = [
        NodeScore(
            node_id=f"n{i}",
            alive=True,
            fits=i != 0,
            score=None if i == 0 else float(i),
            utilisation_before=0.1,
            utilisation_after=None if i == 0 else 0.2,
        )
        for i in range(30)
    ]
    task = TaskSubmitted(task_id="task-05", handler="echo", reply_to="c1", explain=True)
    handlers.on_placed(
        TaskPlaced(
            task=task,
            demand=ResourceVector(cpu=1.0),
            node_id="n29",
            strategy="binpack",
            explanation=PlacementExplanation(strategy="binpack", nodes=tuple(scores)),
        )
    )
    async with dashboard(handlers, store) as http:
        placement = (await http.get("/api/tasks/task-05")).json()["placement"]
    assert placement["explained_nodes"] == 30
    shown = placement["explanation"]["nodes"]
    assert len(shown) == 20
    assert [n["node_id"] for n in shown[:2]] == ["n29", "n28"]  # best score first


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "sleeping"}, "state"),
        ({"handler": "no spaces allowed"}, "handler"),
        ({"node": "x" * 129}, "node"),
        ({"since": "-1"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"until": "1e12"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"cursor": "c" * 301}, "cursor"),
    ],
)
async def test_a_bad_filter_is_a_400_that_names_it(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer_ = await http.get("/api/tasks", params=params)
    assert answer_.status_code == 400
    detail = answer_.json()["detail"]
    assert detail.startswith("bad request")
    assert field in detail


async def test_a_garbled_cursor_or_reversed_times_is_a_400(http: httpx.AsyncClient) -> None:
    garbled = await http.get("/api/tasks", params={"cursor": "not-a-cursor"})
    assert garbled.status_code == 400
    assert "malformed cursor" in garbled.json()["detail"]
    reversed_ = await http.get("/api/tasks", params={"since": 2000, "until": 1000})
    assert reversed_.status_code == 400
    assert "since is after until" in reversed_.json()["detail"]


async def test_an_unknown_or_malformed_task_id(http: httpx.AsyncClient) -> None:
    unknown = await http.get("/api/tasks/no-such-task")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no task no-such-task in the record"
    malformed = await http.get("/api/tasks/bad%20id")
    assert malformed.status_code == 400
    assert "task_id" in malformed.json()["detail"]


async def test_without_a_record_the_endpoints_say_so_and_there_is_no_tasks_page() -> None:
    handlers, _ = monitor_state()
    async with dashboard(handlers, None) as http:
        answer_ = await http.get("/api/tasks")
        assert answer_.status_code == 404
        assert "keeps no task record" in answer_.json()["detail"]
        assert 'href="/tasks"' not in (await http.get("/")).text
        assert (await http.get("/tasks")).status_code == 404


async def test_a_record_that_does_not_answer_is_a_503() -> None:
    handlers, _ = monitor_state()
    away = RecordStore.open("postgresql://postgres@127.0.0.1:9/nowhere")
    try:
        async with dashboard(handlers, away) as http:
            answer_ = await http.get("/api/tasks")
            one = await http.get("/api/tasks/task-01")
    finally:
        await away.close()
    assert answer_.status_code == one.status_code == 503
    assert answer_.json()["detail"].startswith("task record reading")
    assert answer_.headers["retry-after"] == "5"


async def test_the_pages_are_served_with_the_record(http: httpx.AsyncClient) -> None:
    nav = (await http.get("/")).text
    assert 'href="/tasks"' in nav
    for path in ("/tasks", "/tasks/task-01", "/tasks/anything"):
        page = await http.get(path)
        assert page.status_code == 200, path
        assert TOKEN not in page.text


async def test_cancel_needs_the_token(store: RecordStore) -> None:
    handlers, _ = monitor_state()
    canceller = RecordingCanceller()
    async with dashboard(handlers, store, canceller=canceller) as http:
        missing = await http.post("/api/tasks/task-running/cancel")
        wrong = await http.post(
            "/api/tasks/task-running/cancel", headers={"Authorization": "Bearer nope"}
        )
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["detail"] == "this needs the API token (a bearer header)"
    assert wrong.json()["detail"] == "wrong API token"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert canceller.asked == []
    async with dashboard(handlers, store, token=None, canceller=canceller) as http:
        disabled = await http.post(
            "/api/tasks/task-running/cancel", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert disabled.status_code == 403
    assert "no BOSON_API_TOKEN" in disabled.json()["detail"]
    assert canceller.asked == []


async def test_cancel_with_the_token_asks_the_canceller(store: RecordStore) -> None:
    handlers, _ = monitor_state()
    canceller = RecordingCanceller()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with dashboard(handlers, store, canceller=canceller) as http:
        done = await http.post("/api/tasks/task-running/cancel", headers=auth)
        assert done.status_code == 202
        assert done.json() == {"task_id": "task-running", "requested": True, "state": "started"}
        finished = await http.post("/api/tasks/task-01/cancel", headers=auth)
        assert finished.status_code == 409
        assert finished.json()["detail"] == "task task-01 already succeeded: nothing to cancel"
        unknown = await http.post("/api/tasks/nobody/cancel", headers=auth)
        assert unknown.status_code == 404
        oversized = await http.post(
            "/api/tasks/task-running/cancel", headers=auth, content=b"x" * 2048
        )
        assert oversized.status_code == 413
        assert oversized.json()["detail"] == "request body over 1024 bytes"
    assert canceller.asked == [["task-running"]]


async def test_without_cancel_the_endpoint_says_so_and_does_nothing(
    http: httpx.AsyncClient,
) -> None:
    answer_ = await http.post(
        "/api/tasks/task-running/cancel", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer_.status_code == 501
    assert answer_.json()["detail"] == "cancel is not available on this dashboard"


async def test_a_task_the_balancer_moved_says_where_it_was_placed_and_ran(
    store: RecordStore,
) -> None:
    record = await store.get("task-02")
    moved = record.model_copy(update={"node_id": "n7"})  # placed on n2, ran on n7
    shown = placement(moved, None)
    assert (shown.placed_on, shown.node_id) == ("n2", "n7")
    assert shown.summary.endswith("; the balancer moved it to n7")


async def test_beyond_loopback_reading_tasks_needs_the_token(store: RecordStore) -> None:
    handlers, _ = monitor_state()
    async with dashboard(handlers, store, reading_needs_token=True) as http:
        for path in ("/api/tasks", "/api/tasks/task-01"):
            missing = await http.get(path)
            wrong = await http.get(path, headers={"Authorization": "Bearer nope"})
            right = await http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
            assert missing.json()["detail"] == "this needs the API token (a bearer header)"
            assert wrong.json()["detail"] == "wrong API token"
