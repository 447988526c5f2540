"""The page as a whole: usable with the keyboard alone, every control labelled, new
messages announced, readable on a phone-width screen."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from server.test_serve import READY_WITHIN

from .conftest import NewTab
from .served import Served

pytestmark = pytest.mark.slow  # a real server and a real browser

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                    && !el.textContent.trim())
    .map((el) => el.id || el.outerHTML)"""

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_the_keyboard_alone_creates_a_session_and_sends(new_tab: NewTab) -> None:
    tab = new_tab()
    tab.open()
    page = tab.page
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    page.get_by_label("Title").focus()
    page.keyboard.type("typed only")
    page.keyboard.press("Enter")
    tab.wait_open("typed only")
    expect(page.locator("#chat-title")).to_be_focused()
    page.keyboard.press("Tab")
    expect(tab.composer).to_be_focused()
    page.keyboard.type("no mouse needed")
    page.keyboard.press("Enter")
    expect(tab.message("no mouse needed")).to_have_attribute("data-status", "stored")
    expect(tab.composer).to_be_focused()


def test_every_control_is_labelled_and_messages_are_announced(new_tab: NewTab) -> None:
    tab = new_tab()
    tab.open()
    tab.create("labelled", "durable")
    assert tab.page.evaluate(UNLABELLED) == []
    log = tab.page.get_by_role("log", name="Messages")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(tab.page.locator("#connection-label")).to_have_attribute("role", "status")
    expect(tab.page.locator("#heartbeat")).to_have_text(re.compile(r"^heartbeat \d+ s ago$"))
    expect(tab.page.get_by_role("navigation", name="Sessions")).to_be_visible()
    expect(tab.page.get_by_role("main")).to_be_visible()


def test_a_phone_width_screen_needs_no_sideways_scrolling(new_tab: NewTab) -> None:
    tab = new_tab()
    tab.page.set_viewport_size({"width": 360, "height": 740})
    tab.open()
    tab.create("a rather long session title that has to wrap on a small screen", "client")
    tab.send("a-long-word-without-spaces-" * 6)
    assert tab.page.evaluate(OVERFLOW) <= 0
    box = tab.composer.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 360
    expect(tab.page.get_by_role("button", name="Send")).to_be_in_viewport()


def expired_on_the_server(server: Served, session_id: str) -> None:
    """Wait until the server answers 410 for the session (its ttl has run out)."""
    deadline = time.monotonic() + READY_WITHIN
    while httpx.get(f"{server.base}/api/sessions/{session_id}").status_code != 410:
        assert time.monotonic() < deadline, "the session did not expire"


def test_an_expired_session_is_marked_and_takes_no_messages(
    new_tab: NewTab, server: Served
) -> None:
    created = httpx.post(
        f"{server.base}/api/sessions", json={"ttl": 0.5, "metadata": {"title": "short-lived"}}
    )
    session_id = created.json()["data"]["id"]
    expired_on_the_server(server, session_id)
    tab = new_tab()
    tab.open(f"#session={session_id}")
    expect(tab.item("short-lived").locator(".expired-mark")).to_have_text("expired")
    expect(tab.page.locator("#chat-notice")).to_have_text(
        "This session has expired: it takes no more messages."
    )
    expect(tab.composer).to_be_disabled()
