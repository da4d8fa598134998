"""Debian's Chromium, headless, driven by Playwright: one launch for every page we photograph.

The dashboard's browser test, its benchmark and the README screenshot script
open the same browser the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.asynccontextmanager
async def headless_chromium(*, launch_timeout_ms: float = 30_000) -> AsyncIterator[Browser]:
    """A launched Chromium, closed on the way out (Playwright is imported only here)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=launch_timeout_ms
        )
        try:
            yield browser
        finally:
            await browser.close()


__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "headless_chromium"]
