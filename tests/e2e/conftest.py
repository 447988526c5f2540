"""The browser tests: Debian's Chromium, driven by Playwright, on the page of a real
``chatkeep serve`` process.

Without ``/usr/bin/chromium`` (or ``CHATKEEP_TEST_CHROMIUM``) they skip with the reason,
or fail when ``CI=true``. Each test that fails leaves a screenshot of every tab it opened
in ``test-output/``. A test also fails when a tab logged a console error or threw an
uncaught exception (other than the network errors the test provokes on purpose).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from failure.conftest import unavailable

from .served import Served
from .tab import Tab

CHROMIUM = Path(os.environ.get("CHATKEEP_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = "test-output"
FAILED = pytest.StashKey[bool]()

NewTab = Callable[[], Tab]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


def require_chromium(path: Path) -> None:
    """Skip the test (fail it under ``CI=true``) when there is no Chromium at ``path``."""
    if not path.is_file():
        unavailable(f"{path} is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless, with no network of its own beyond the page's server. One per
    module: the sync API's event loop must be gone before asyncio tests run."""
    require_chromium(CHROMIUM)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def serving(directory: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """A started server for a module fixture, always stopped when the module is done."""
    served = Served(directory, env)
    try:
        served.start()
        yield served
    finally:
        served.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the tests of a module (each works in sessions of its own). Expired
    sessions are swept hourly: they stay listed, marked expired, while a test runs."""
    yield from serving(tmp_path_factory.mktemp("served"), {"SESSION_CLEANUP_INTERVAL": "1h"})


@pytest.fixture
def new_tab(browser: Browser, server: Served, request: pytest.FixtureRequest) -> Iterator[NewTab]:
    """Opens tabs, each in a browser context of its own (a person on another device)."""
    tabs: list[Tab] = []

    def open_tab() -> Tab:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        tab = Tab(context.new_page(), server.base)
        tabs.append(tab)
        return tab

    yield open_tab
    failed = request.node.stash.get(FAILED, False)
    if failed:
        keep_screenshots(request, tabs)
    for tab in tabs:
        tab.page.context.close()
    problems = [p for tab in tabs for p in tab.unexpected_problems()]
    if problems and not failed:
        pytest.fail("the page logged errors:\n" + "\n".join(problems))


def keep_screenshots(request: pytest.FixtureRequest, tabs: list[Tab]) -> None:
    folder = request.config.rootpath / OUTPUT
    folder.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    for number, tab in enumerate(tabs, 1):
        tab.page.screenshot(path=folder / f"{name}-tab{number}.png", full_page=True)
