"""Real Chromium through Playwright for the form tests: one set of launch flags, one fresh profile each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.binaries import require_binary

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Headless as root (CI): no sandbox; no GPU, QUIC or background traffic, so only 127.0.0.1 is reached.
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


@contextmanager
def chromium_page(user_data_dir: Path, viewport_height: int = 900) -> Iterator[Page]:
    """A page of the system Chromium with a new empty profile in `user_data_dir` (skip/fail without it)."""
    chromium = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1100, "height": viewport_height},
        )
        try:
            yield context.new_page()
        finally:
            context.close()
