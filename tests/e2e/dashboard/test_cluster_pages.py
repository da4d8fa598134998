"""The dashboard in a real browser (Debian's Chromium, driven by Playwright).

Against a running Boson (embedded: the real services on the in-memory
broker): the nodes appear, a new node and finished tasks show up live without
a reload, a node that stops shows as an alert, and the page acts only with
the token. Each page's screenshot is saved (``BOSON_SCREENSHOT_DIR`` or a
temporary directory).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from boson.launcher import EmbeddedCluster
from tests.e2e.dashboard.conftest import TOKEN

BOSON_ENV = {
    "BOSON_HEARTBEAT_INTERVAL_S": "0.25",
    "BOSON_MISSED_HEARTBEATS": "4",
    "BOSON_DASHBOARD_LIVE_INTERVAL_S": "0.5",
    "BOSON_DASHBOARD_HISTORY_INTERVAL_S": "0.5",
}
EXECUTORS = ("local-1", "local-2")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_the_pages_show_the_cluster_live(
    cluster: EmbeddedCluster, browser: Browser, screenshots: Path
) -> None:
    assert cluster.dashboard_url is not None
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(cluster.dashboard_url)
    # The nodes appear.
    for node in ("local-1", "local-2"):
        await page.wait_for_selector(f'tr[data-node="{node}"]', timeout=15_000)
    await page.wait_for_function("document.body.dataset.updated !== undefined", timeout=10_000)
    # Live: a node that joins appears, with no reload (the marker survives).
    await page.evaluate("window.notReloaded = true")
    await cluster.start_executor("local-3", slots=2)
    await page.wait_for_selector('tr[data-node="local-3"]', timeout=15_000)
    assert await page.evaluate("window.notReloaded === true")
    assert (await page.inner_text("#nodes-count")).startswith("3 matching")
    await page.screenshot(path=str(screenshots / "cluster.png"), full_page=True)

    # Work done shows on the throughput page, live.
    client = await cluster.client()
    try:
        for _ in range(10):
            await client.execute("noop", timeout=30)
    finally:
        await client.close()
    await page.goto(cluster.dashboard_url + "throughput")
    # Polled by Playwright itself: a string predicate would need eval, which the CSP forbids.
    await expect(page.locator("#throughput-totals .value").first).to_have_text("10", timeout=15_000)
    await page.screenshot(path=str(screenshots / "throughput.png"), full_page=True)

    # A node that stops heartbeating is an alert.
    await page.goto(cluster.dashboard_url + "alerts")
    await page.wait_for_selector("ul.active li.none", timeout=10_000)
    await page.evaluate("window.notReloaded = true")
    await cluster.stop_service(cluster.services[-1])  # local-3
    await page.wait_for_selector('ul.active li[data-reason="node-down"]', timeout=15_000)
    assert "local-3" in await page.inner_text("ul.active")
    assert await page.evaluate("window.notReloaded === true")
    await page.screenshot(path=str(screenshots / "alerts.png"), full_page=True)
    await page.close()


async def test_the_page_acts_only_with_the_token(
    cluster: EmbeddedCluster, browser: Browser, screenshots: Path
) -> None:
    assert cluster.dashboard_url is not None
    await cluster.stop_service(cluster.services[-1])  # local-2 goes down: an alert
    page = await browser.new_page()
    await page.goto(cluster.dashboard_url + "alerts")
    button = page.locator('tr[data-reason="node-down"] button[data-ack]')
    await button.wait_for(timeout=15_000)
    # Without the token: refused, and the page asks for it.
    await button.click()
    refusal = page.locator('tr[data-reason="node-down"] span.error')
    await expect(refusal).to_contain_text("API token", timeout=5_000)
    assert await page.is_visible("#token-form")
    # The refusal outlives the live updates that rebuild the rows.
    await _live_updates(page, 3)
    await expect(refusal).to_contain_text("API token", timeout=1_000)
    # With it (typed once, kept in sessionStorage, never a cookie): done.
    await page.fill("#token-input", TOKEN)
    await page.click("#token-form button")
    assert await page.evaluate("sessionStorage.getItem('boson-api-token')") == TOKEN
    button = page.locator('tr[data-reason="node-down"] button[data-ack]')
    await button.click()
    await page.wait_for_selector('tr.acknowledged[data-reason="node-down"]', timeout=5_000)
    assert await page.context.cookies() == []
    html = await page.content()
    assert TOKEN not in html.replace(f'value="{TOKEN}"', "")
    await page.screenshot(path=str(screenshots / "alerts-acknowledged.png"), full_page=True)
    await page.close()


async def _live_updates(page: Page, count: int) -> None:
    """Wait (bounded) until the page has taken ``count`` more live updates."""
    seen = await page.evaluate("document.body.dataset.updated")
    for _ in range(count):
        for _ in range(100):
            now = await page.evaluate("document.body.dataset.updated")
            if now != seen:
                seen = now
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the page took no live update within 5 s")
    # The last update's refresh reads the API before it rebuilds the rows.
    await asyncio.sleep(0.3)
