"""The session panel: creating a session in each mode, the mode fixed once created, the
global default for new sessions only, deleting, the live list, and its error state."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Route, expect

from .conftest import NewTab, serving
from .served import Served

pytestmark = pytest.mark.slow  # a real server and a real browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Expired sessions are swept every second (and their members told)."""
    yield from serving(tmp_path_factory.mktemp("sessions"), {"SESSION_CLEANUP_INTERVAL": "1s"})


def stored_mode(server: Served, session_id: str) -> str:
    response = httpx.get(f"{server.base}/api/sessions/{session_id}")
    assert response.status_code == 200, response.text
    mode: str = response.json()["data"]["persistence"]
    return mode


@pytest.mark.parametrize("mode", ["durable", "client", "none"])
def test_a_session_in_each_mode(new_tab: NewTab, server: Served, mode: str) -> None:
    tab = new_tab()
    tab.open()
    session_id = tab.create(f"in {mode}", mode)
    expect(tab.item(f"in {mode}").locator(".badge")).to_have_text(mode)
    expect(tab.page.locator("#chat-persistence")).to_have_text(f"Persistence: {mode}")
    assert stored_mode(server, session_id) == mode
    tab.send(f"hello from {mode}")
    expect(tab.item(f"in {mode}").locator(".session-meta")).to_contain_text("1 message")


def test_the_mode_is_shown_and_cannot_be_changed(new_tab: NewTab, server: Served) -> None:
    tab = new_tab()
    tab.open()
    session_id = tab.create("fixed mode", "client")
    chat = tab.page.locator("#chat")
    expect(chat.locator("#chat-meta")).to_contain_text("fixed at creation; it cannot be changed")
    assert chat.locator("select, input, [role=combobox], [role=radio]").count() == 0
    assert chat.get_by_role("button").all_inner_texts() == ["Send"]
    # the only mode selectors: the one for new sessions, and the default in the settings
    assert tab.page.locator("select").evaluate_all("els => els.map(e => e.id)") == [
        "new-persistence",
        "default-persistence",
    ]
    assert stored_mode(server, session_id) == "client"


def test_the_default_applies_to_new_sessions_only(new_tab: NewTab, server: Served) -> None:
    tab = new_tab()
    tab.open()
    tab.create("made before", "durable")
    page = tab.page
    try:
        page.get_by_role("button", name="Settings").click()
        dialog = page.get_by_role("dialog", name="Settings")
        expect(dialog).to_contain_text("Affects new sessions only")
        expect(dialog.get_by_label("Default persistence")).to_have_value("durable")
        dialog.get_by_label("Default persistence").select_option("none")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog.get_by_role("status")).to_contain_text("Saved. New sessions will use none")
        dialog.get_by_role("button", name="Close").click()
        expect(page.get_by_role("button", name="Settings")).to_be_focused()

        expect(page.get_by_label("Persistence", exact=True)).to_have_value("none")
        after = tab.create("made after")
        expect(tab.item("made after").locator(".badge")).to_have_text("none")
        expect(tab.item("made before").locator(".badge")).to_have_text("durable")
        assert stored_mode(server, after) == "none"
        tab.switch_to("made before")
        expect(page.locator("#chat-persistence")).to_have_text("Persistence: durable")

        tab.reload()  # a new page starts from the server's default
        expect(page.get_by_label("Persistence", exact=True)).to_have_value("none")
    finally:
        httpx.put(f"{server.base}/api/settings", json={"defaultPersistence": "durable"})


def test_deleting_a_session_asks_first(new_tab: NewTab, server: Served) -> None:
    tab, other = new_tab(), new_tab()
    tab.open()
    session_id = tab.create("to delete", "durable")
    tab.send("soon gone")
    other.open(f"#session={session_id}")
    other.wait_open("to delete")
    page = tab.page

    tab.item("to delete").get_by_role("button", name="Delete session to delete").click()
    dialog = page.get_by_role("dialog", name="Delete this session?")
    expect(dialog).to_contain_text("“to delete” and all its messages will be deleted")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(tab.item("to delete")).to_have_count(1)

    tab.item("to delete").get_by_role("button", name="Delete session to delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(tab.item("to delete")).to_have_count(0)
    expect(page.locator("#chat-title")).to_have_text("No session open")
    assert httpx.get(f"{server.base}/api/sessions/{session_id}").status_code == 404
    # a member of the session is told at once
    expect(other.page.locator("#chat-notice")).to_have_text("This session was deleted.")
    expect(other.item("to delete")).to_have_count(0)
    expect(other.composer).to_be_disabled()


def test_the_list_follows_changes_made_elsewhere(new_tab: NewTab, server: Served) -> None:
    watcher = new_tab()
    watcher.open()
    created = httpx.post(
        f"{server.base}/api/sessions",
        json={"persistence": "durable", "metadata": {"title": "made elsewhere"}},
    )
    session_id = created.json()["data"]["id"]
    expect(watcher.item("made elsewhere")).to_have_count(1)
    expect(watcher.item("made elsewhere").locator(".badge")).to_have_text("durable")
    httpx.delete(f"{server.base}/api/sessions/{session_id}")
    expect(watcher.item("made elsewhere")).to_have_count(0)


def test_a_list_that_cannot_load_says_so_and_retries(new_tab: NewTab) -> None:
    tab = new_tab()
    page = tab.page

    def refuse(route: Route) -> None:
        route.abort("connectionrefused")

    page.route(re.compile(r".*/api/sessions\?.*"), refuse)
    tab.allow(r"ERR_CONNECTION_REFUSED")
    page.goto(tab.base + "/")
    expect(page.locator("#sessions-status")).to_have_text(
        "Could not load the sessions: the server cannot be reached"
    )
    tab.wait_connected()  # the page does not load the list again by itself
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    page.unroute(re.compile(r".*/api/sessions\?.*"), refuse)
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("button", name="Try again")).to_be_hidden()
    expect(page.locator("#session-list")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#sessions-status")).not_to_contain_text("Could not load")


def test_a_session_that_expires_while_open_says_so(new_tab: NewTab, server: Served) -> None:
    created = httpx.post(f"{server.base}/api/sessions", json={"metadata": {"title": "expiring"}})
    session_id = created.json()["data"]["id"]
    tab = new_tab()
    tab.open(f"#session={session_id}")
    tab.wait_open("expiring")
    tab.send("just in time")
    # only now, however slow the page was to open, give it one more second to live
    shortened = httpx.patch(f"{server.base}/api/sessions/{session_id}", json={"ttl": 1})
    assert shortened.status_code == 200, shortened.text
    # the sweeper ends it: the page is told, without a reload
    expect(tab.page.locator("#chat-notice")).to_have_text(
        "This session has expired: it takes no more messages.", timeout=15_000
    )
    expect(tab.composer).to_be_disabled()
    tab.expect_texts(["just in time"])
