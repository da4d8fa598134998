"""The Tenants page in a real browser (Debian's Chromium, Playwright).

Against a running Boson (embedded): with no tenants file and no report yet,
the page shows the one ``default`` tenant; once a
``tenants.report`` comes over the bus, the page shows each tenant's
usage against quota, what it borrows and what waits, and follows the next
report live, without a reload. The screenshot goes to
``BOSON_SCREENSHOT_DIR`` (or a temporary directory).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from boson.launcher import EmbeddedCluster
from boson_services.monitor.app import MonitorService
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage
from boson_shared.contract.topology import RK_TENANTS
from boson_shared.runtime.publisher import Route

BOSON_ENV = {"BOSON_SNAPSHOT_INTERVAL_S": "0.25", "BOSON_DASHBOARD_LIVE_INTERVAL_S": "0.5"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def tenant(name: str, *, quota: float, usage: float, pending: float = 0.0) -> TenantUsage:
    borrowed = max(0.0, usage - quota)
    return TenantUsage(
        name=name,
        weight=2.0 if name == "research" else 1.0,
        may_preempt=name == "research",
        quota={"cpu": quota, "memory": quota * 4},
        guarantee={"cpu": quota, "memory": quota * 4},
        borrowing_limit={"cpu": quota / 2},
        usage={"cpu": usage, "memory": usage * 3},
        borrowed={"cpu": borrowed},
        pending={"cpu": pending},
        running=int(usage // 4),
        waiting=int(pending // 4),
    )


def report(seq: int, *tenants: TenantUsage) -> TenantsReport:
    return TenantsReport(
        balancer_id="balancer-1",
        seq=seq,
        pool={"cpu": 64.0, "memory": 256.0, "gpu": 0.0},
        grace_s=30.0,
        tenants=tenants,
    )


async def publish(monitor: MonitorService, tenants: TenantsReport) -> None:
    """Over the bus, where the active balancer publishes its report."""
    await monitor.publisher.publish(Route(monitor.names.events_exchange, RK_TENANTS), tenants)


async def test_the_tenants_page_shows_the_report_live(
    cluster: EmbeddedCluster, browser: Browser, screenshots: Path
) -> None:
    assert cluster.dashboard_url is not None
    (monitor,) = [s for s in cluster.services if isinstance(s, MonitorService)]
    page = await browser.new_page(viewport={"width": 1280, "height": 700})
    await page.goto(cluster.dashboard_url + "tenants")
    # No tenants file, no report: the one default tenant.
    await page.wait_for_selector('tr[data-tenant="default"]', timeout=15_000)
    assert "no report from the balancer yet" in await page.inner_text("#tenants-note")
    await page.evaluate("window.notReloaded = true")

    await publish(
        monitor,
        report(
            1,
            tenant("research", quota=24, usage=30, pending=8),
            tenant("analytics", quota=16, usage=6),
        ),
    )
    research = 'tr[data-tenant="research"]'
    await page.wait_for_selector(research, timeout=15_000)
    assert await page.locator('tr[data-tenant="default"]').count() == 0
    row = await page.inner_text(research)
    assert "30.0 of 24.0" in row
    assert "borrowed 6.0" in row
    assert "pending 8.0" in row
    assert "7 / 2" in row  # running / waiting
    assert await page.get_attribute(research, "class") == "borrowing"
    assert "balancer-1" in await page.inner_text("#tenants-note")

    # The next report, live: a tenant joins, research gives back what it borrowed.
    await publish(
        monitor,
        report(
            2,
            tenant("research", quota=24, usage=20),
            tenant("analytics", quota=16, usage=6),
            tenant("batch", quota=8, usage=4, pending=12),
        ),
    )
    await page.wait_for_selector('tr[data-tenant="batch"]', timeout=15_000)
    await page.wait_for_selector(f"{research}:not(.borrowing)", timeout=15_000)
    assert await page.evaluate("window.notReloaded === true")
    await page.screenshot(path=str(screenshots / "tenants.png"), full_page=True)
    await page.close()
