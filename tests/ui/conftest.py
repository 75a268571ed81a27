"""One local suite with the console (`odin dev up`, Envoy serving ui/dist) and one Chromium for the UI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from ui_harness import REPO, Console, chromium_path, login, require_build

from odin.devsuite import Suite

# Auto-waiting expectations poll up to this long; a loaded 2-core machine needs headroom.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    dist = require_build()
    previous = os.environ.get("ODIN_UI_DIR")
    os.environ["ODIN_UI_DIR"] = str(dist)
    suite = Suite(tmp_path_factory.mktemp("suite"))
    try:
        services = suite.up(timeout=90)
    finally:
        if previous is None:
            os.environ.pop("ODIN_UI_DIR", None)
        else:
            os.environ["ODIN_UI_DIR"] = previous
    try:
        console = Console(str(services["gateway"]["address"]),
                          (suite.state_dir / "admin-password").read_text().strip(), suite.state_dir)
        console.push_pipeline(REPO / "examples" / "hello", "hello")
        yield console
    finally:
        suite.down()


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(
        executable_path=chromium_path(), headless=True,
        # As root (CI) Chromium needs --no-sandbox; /dev/shm may be small in containers.
        args=["--no-sandbox", "--disable-dev-shm-usage"])
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests write each page's screenshot: $ODIN_UI_SCREENSHOTS (docs/ui to refresh the docs)."""
    target = os.environ.get("ODIN_UI_SCREENSHOTS")
    path = (REPO / target) if target and not Path(target).is_absolute() else Path(target) if target else \
        tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, console: Console) -> Page:
    """A page logged in as the dev admin, on the jobs page."""
    page = context.new_page()
    page.goto(console.url)
    login(page, console)
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    return page

