"""Debian's Chromium driven by Playwright, for the browser tests: no browser is downloaded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import require

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SPAWN_TIMEOUT_MS = 120_000  # login -> server spawned -> JupyterLab loaded and drawn
STEP_TIMEOUT_MS = 30_000  # any other wait: generous, the machine may be busy with other hubs


@contextlib.contextmanager
def chromium_page(request: pytest.FixtureRequest, artifacts: Path, args: Sequence[str] = (),
                  **context_options: Any) -> Iterator[Page]:
    """A fresh page in a fresh Chromium started with CHROMIUM_ARGS + args; the browser is
    closed whatever happens. On failure a screenshot of the page as it was is kept in the
    artifacts directory."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    require(CHROMIUM.exists(), "Debian's chromium at /usr/bin/chromium")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=[*CHROMIUM_ARGS, *args])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800},
                                          **context_options)
            context.set_default_timeout(STEP_TIMEOUT_MS)
            try:
                page = context.new_page()
                shot = artifacts / f"browser-failed-{request.node.name}.png"
                try:
                    yield page
                except BaseException:  # a failure inside `with chromium_page(...)`
                    _failure_screenshot(page, shot)
                    raise
                report = getattr(request.node, "rep_call", None)
                if report is not None and report.failed:  # a failure after a fixture's yield
                    _failure_screenshot(page, shot)
            finally:
                context.close()
        finally:
            browser.close()


def _failure_screenshot(page: Page, path: Path) -> None:
    try:
        page.screenshot(path=str(path), full_page=True)
        print(f"\nbrowser screenshot at failure: {path} (page {page.url})")
    except Exception as exc:  # the page may be gone; the test's own error matters more
        print(f"\nno screenshot at failure: {exc}")
