"""The Tasks and One-task pages in a real browser (Debian's Chromium, Playwright).

Against a running Boson (embedded: the real services on the in-memory broker,
the task record on a SQLite file): a submitted task appears on the open Tasks
page and reaches succeeded there without a reload; its page shows the
timeline, demand against use and the result; cancel from the page cancels a
running task; a page without the token cannot cancel. Screenshots go to
``BOSON_SCREENSHOT_DIR`` (or a temporary directory).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Browser

from boson.launcher import EmbeddedCluster
from tests.e2e.dashboard.conftest import TOKEN

BOSON_ENV = {
    "BOSON_HEARTBEAT_INTERVAL_S": "0.25",
    "BOSON_SNAPSHOT_INTERVAL_S": "0.25",
    "BOSON_DASHBOARD_LIVE_INTERVAL_S": "0.5",
}
EXECUTORS = ("local-1",)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_a_submitted_task_appears_and_succeeds_live(
    cluster: EmbeddedCluster, browser: Browser, screenshots: Path
) -> None:
    assert cluster.dashboard_url is not None
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(cluster.dashboard_url + "tasks")
    await page.wait_for_selector("#task-page-label:has-text('page 1')", timeout=10_000)
    await page.evaluate("window.notReloaded = true")
    client = await cluster.client()
    try:
        handle = await client.submit("burn", params={"seconds": 1.0}, explain=True)
        row = f'tr[data-task="{handle.task_id}"]'
        await page.wait_for_selector(row, timeout=15_000)
        await page.wait_for_selector(f'{row}[data-state="succeeded"]', timeout=30_000)
        await handle.result(timeout=30)
    finally:
        await client.close()
    assert await page.evaluate("window.notReloaded === true")
    assert "burn" in await page.inner_text(row)
    await page.screenshot(path=str(screenshots / "tasks.png"), full_page=True)

    # Its page: the timeline with times and node, demand against use, the result.
    await page.click(f"{row} a")
    await page.wait_for_selector('body[data-task-state="succeeded"]', timeout=10_000)
    stages = await page.locator("#timeline tr").evaluate_all(
        "rows => rows.map(r => r.dataset.stage)"
    )
    assert stages[0] == "submitted"
    assert stages[-1] == "succeeded"
    assert "local-1" in await page.inner_text("#timeline")
    assert await page.inner_text('#use tr[data-resource="cpu"] td:nth-child(3)') != "–"
    assert '"cpu_s"' in await page.inner_text("#preview")
    summary = await page.inner_text("#placement-summary")
    assert "placed on local-1" in summary
    # Submitted with explain: the record's placement event brought the scores.
    assert "best 1 of 1 nodes" in summary
    assert await page.is_hidden("#cancel")  # finished: nothing to cancel
    await page.screenshot(path=str(screenshots / "task.png"), full_page=True)
    await page.close()


async def test_cancel_from_the_page_cancels_a_running_task(
    cluster: EmbeddedCluster, browser: Browser, screenshots: Path
) -> None:
    assert cluster.dashboard_url is not None
    client = await cluster.client()
    try:
        handle = await client.submit("burn", params={"seconds": 60.0})
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{cluster.dashboard_url}tasks/{handle.task_id}")
        await page.wait_for_selector('body[data-task-state="started"]', timeout=30_000)
        # The token, typed once, kept in this tab's sessionStorage.
        await page.evaluate("document.getElementById('token-form').hidden = false")
        await page.fill("#token-input", TOKEN)
        await page.click("#token-form button")
        await page.click("#cancel")
        await page.wait_for_selector("#cancel-status.requested", timeout=10_000)
        # Live: the record shows it cancelled, with no reload.
        await page.wait_for_selector('body[data-task-state="cancelled"]', timeout=20_000)
        result = await handle.result(timeout=20)
        assert result.status == "cancelled"
        assert await page.is_hidden("#cancel")
        assert "cancelled" in await page.inner_text("#preview")
        assert await page.context.cookies() == []
        await page.screenshot(path=str(screenshots / "task-cancelled.png"), full_page=True)
        await page.close()
    finally:
        await client.close()


async def test_a_page_without_the_token_cannot_cancel(
    cluster: EmbeddedCluster, browser: Browser
) -> None:
    assert cluster.dashboard_url is not None
    client = await cluster.client()
    try:
        handle = await client.submit("burn", params={"seconds": 60.0})
        page = await browser.new_page()
        await page.goto(f"{cluster.dashboard_url}tasks/{handle.task_id}")
        await page.wait_for_selector('body[data-task-state="started"]', timeout=30_000)
        await page.click("#cancel")
        await page.wait_for_selector("#cancel-status.error", timeout=5_000)
        assert "API token" in await page.inner_text("#cancel-status")
        assert await page.is_visible("#token-form")  # the page asks for it
        assert await page.evaluate("sessionStorage.getItem('boson-api-token')") is None
        assert await page.context.cookies() == []
        # Refused: the task runs on.
        await asyncio.sleep(1.5)
        assert await page.get_attribute("body", "data-task-state") == "started"
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.5)
        await page.close()
        assert (await client.cancel(handle.task_id))[handle.task_id] == "cancelled"
    finally:
        await client.close()
