"""``/api/tenants`` over HTTP (in process, ASGI): the balancer's report, shaped; bad input.

The report is the real wire model (``tenants.report``), handed to the
monitor's handlers as the bus delivers it; they keep the latest in the view.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from boson_services.monitor.dashboard.tenants import tenants_page
from boson_services.monitor.handlers import MonitorHandlers
from boson_shared.contract.tenants_report import TenantUsage
from tests.support.dashboard import asgi_client, dashboard_app
from tests.support.monitor import monitor_state
from tests.support.tenants import BATCH, RESEARCH, report

TOKEN = "tenants-test-token"


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, MonitorHandlers]]:
    handlers, _ = monitor_state()
    app, _ = dashboard_app(handlers, token=TOKEN)
    async with asgi_client(app) as http:
        yield http, handlers


async def test_before_any_report_the_default_tenant_alone(
    api: tuple[httpx.AsyncClient, MonitorHandlers],
) -> None:
    http, _ = api
    answer = await http.get("/api/tenants")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["reported"], body["reported_at"], body["total"]) == (False, None, 1)
    (default,) = body["tenants"]
    assert default["name"] == "default"
    assert default["resources"]["cpu"] == {
        "quota": 0.0,
        "guarantee": None,
        "borrowing_limit": None,
        "usage": 0.0,
        "borrowed": 0.0,
        "pending": 0.0,
        "used_of_quota": None,
    }


async def test_the_latest_report_shows_usage_against_quota_borrowed_and_pending(
    api: tuple[httpx.AsyncClient, MonitorHandlers],
) -> None:
    http, handlers = api
    handlers.on_tenants(report(1, RESEARCH, BATCH))
    body = (await http.get("/api/tenants")).json()
    assert (body["reported"], body["balancer_id"], body["grace_s"]) == (True, "bal-1", 30.0)
    assert body["pool"] == {"cpu": 64.0, "memory": 256.0, "gpu": 4.0}
    assert [t["name"] for t in body["tenants"]] == ["batch", "research"]  # by name
    research = body["tenants"][1]
    assert (research["running"], research["waiting"], research["preempted"]) == (10, 3, 1)
    assert research["borrowing"] is True
    cpu = research["resources"]["cpu"]
    assert (cpu["usage"], cpu["quota"], cpu["borrowed"], cpu["pending"]) == (40.0, 32.0, 8.0, 0.0)
    assert cpu["used_of_quota"] == pytest.approx(1.25)
    assert (cpu["guarantee"], cpu["borrowing_limit"]) == (32.0, 16.0)
    assert research["resources"]["memory"]["borrowing_limit"] is None  # no limit
    assert research["resources"]["gpu"]["pending"] == 1.0
    batch = body["tenants"][0]
    assert batch["borrowing"] is False
    assert batch["resources"]["cpu"]["used_of_quota"] is None  # no quota
    # Live: the next report replaces it.
    handlers.on_tenants(report(2, BATCH))
    body = (await http.get("/api/tenants")).json()
    assert [t["name"] for t in body["tenants"]] == ["batch"]


async def test_one_tenant_and_a_page_by_name(
    api: tuple[httpx.AsyncClient, MonitorHandlers],
) -> None:
    http, handlers = api
    handlers.on_tenants(report(1, RESEARCH, BATCH))
    one = await http.get("/api/tenants/research")
    assert one.status_code == 200
    assert one.json()["weight"] == 2.0
    page = (await http.get("/api/tenants", params={"search": "tch", "limit": 1})).json()
    assert (page["total"], [t["name"] for t in page["tenants"]]) == (1, ["batch"])
    later = (await http.get("/api/tenants", params={"offset": 1, "limit": 1})).json()
    assert (later["total"], [t["name"] for t in later["tenants"]]) == (2, ["research"])


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/tenants/nobody", 404, "no tenant nobody"),
        ("/api/tenants/bad%20name", 400, "bad request"),
        ("/api/tenants?search=a%20b", 400, "search"),
        ("/api/tenants?limit=0", 400, "limit"),
        ("/api/tenants?limit=501", 400, "limit"),
        ("/api/tenants?offset=-1", 400, "offset"),
        ("/api/tenants?search=" + "x" * 65, 400, "search"),
    ],
)
async def test_bad_input_is_a_clear_status_and_line(
    api: tuple[httpx.AsyncClient, MonitorHandlers], path: str, status: int, says: str
) -> None:
    http, handlers = api
    handlers.on_tenants(report(1, RESEARCH))
    answer = await http.get(path)
    assert answer.status_code == status
    assert says in answer.json()["detail"]


async def test_beyond_loopback_reading_tenants_needs_the_token() -> None:
    handlers, _ = monitor_state()
    app, _ = dashboard_app(handlers, token=TOKEN, reading_needs_token=True)
    async with asgi_client(app) as http:
        assert (await http.get("/api/tenants")).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await http.get("/api/tenants", headers=wrong)).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.get("/api/tenants", headers=right)).status_code == 200


async def test_the_tenants_page_is_served_and_listed() -> None:
    handlers, _ = monitor_state()
    app, _ = dashboard_app(handlers)
    async with asgi_client(app) as http:
        page = await http.get("/tenants")
        assert page.status_code == 200
        assert 'data-page="tenants"' in page.text
        assert 'href="/tenants"' in (await http.get("/")).text


def test_a_resource_beyond_the_usual_three_gets_its_column() -> None:
    odd = TenantUsage(name="fpga-team", weight=1.0, may_preempt=False, quota={"fpga": 2.0})
    shaped = tenants_page(report(1, odd))
    assert list(shaped.pool) == ["cpu", "memory", "gpu", "fpga"]
    assert shaped.tenants[0].resources["fpga"].quota == 2.0
