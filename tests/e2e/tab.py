"""One browser tab on the page, with the steps the tests take in it (as a person would:
through labels, buttons and the keyboard) and what they read back."""

from __future__ import annotations

import re
from typing import Final

from playwright.sync_api import ConsoleMessage, Error, Locator, Page, expect

WAIT_MS: Final = 15_000
"""How long a step may wait for the page."""
RECONNECT_MS: Final = 45_000
"""How long a page may take to come back after its server restarted: the server's start
on a busy machine, then up to one reconnect backoff (at most about 6 s)."""


class Tab:
    """A page of the app, recording every console error and uncaught exception in it."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        page.set_default_timeout(WAIT_MS)
        page.on("console", self._console)
        page.on("pageerror", self._page_error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _page_error(self, error: Error) -> None:
        self.problems.append(f"uncaught: {error.message}")

    def allow(self, pattern: str) -> None:
        """Accept console errors matching ``pattern`` (the browser's own network errors
        that a test provokes on purpose, such as a server going away)."""
        self.allowed.append(re.compile(pattern))

    def unexpected_problems(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]

    # -- steps ------------------------------------------------------------------------
    def open(self, fragment: str = "") -> None:
        self.page.goto(self.base + "/" + fragment)
        self.wait_connected()
        expect(self.page.locator("#session-list")).to_have_attribute("aria-busy", "false")

    def reload(self) -> None:
        self.page.reload()
        self.wait_connected()
        expect(self.page.locator("#session-list")).to_have_attribute("aria-busy", "false")

    def wait_connected(self, timeout_ms: float = WAIT_MS) -> None:
        state = self.page.locator("#connection")
        expect(state).to_have_attribute("data-state", "open", timeout=timeout_ms)

    def create(self, title: str, mode: str | None = None) -> str:
        """Create a session (in ``mode``, or the preselected default); it opens. Its id."""
        self.page.get_by_label("Title").fill(title)
        if mode is not None:
            self.page.get_by_label("Persistence", exact=True).select_option(mode)
        self.page.get_by_role("button", name="Create session").click()
        self.wait_open(title)
        return self.current_id()

    def current_id(self) -> str:
        item = self.page.locator("#session-list li", has=self.page.locator("[aria-current]"))
        session_id = item.get_attribute("data-session-id")
        assert session_id is not None
        return session_id

    def wait_open(self, title: str) -> None:
        expect(self.page.locator("#chat-title")).to_have_text(title)
        expect(self.page.locator("#messages")).to_have_attribute("aria-busy", "false")
        expect(self.composer).to_be_enabled()

    def switch_to(self, title: str) -> None:
        self.item(title).get_by_role("button", name=re.compile(re.escape(title))).first.click()
        self.wait_open(title)

    @property
    def composer(self) -> Locator:
        return self.page.get_by_label("Message", exact=True)

    def send(self, text: str) -> None:
        """Type a message and press Enter; wait until the server has confirmed it."""
        self.composer.fill(text)
        self.composer.press("Enter")
        sent = self.message(text)
        expect(sent).to_have_attribute("data-status", "stored")

    def message(self, text: str) -> Locator:
        return self.page.locator("#messages li").filter(
            has=self.page.locator(".message-body", has_text=re.compile(f"^{re.escape(text)}$"))
        )

    def item(self, title: str) -> Locator:
        return self.page.locator("#session-list li").filter(
            has=self.page.locator(".session-name", has_text=re.compile(f"^{re.escape(title)}$"))
        )

    def texts(self) -> list[str]:
        return self.page.locator("#messages .message-body").all_inner_texts()

    def expect_texts(self, texts: list[str]) -> None:
        expect(self.page.locator("#messages .message-body")).to_have_text(texts)
