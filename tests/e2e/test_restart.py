"""A server restart while the page is open: the page shows the lost connection, comes
back by itself and resumes from the last message it had, showing none twice; a message
typed while the server was away can be sent again; ``none`` sessions do not survive."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import NewTab
from .served import Served
from .tab import RECONNECT_MS, Tab

pytestmark = pytest.mark.slow  # a real server and a real browser

# The browser's own reports of a server that is away (expected while it restarts).
SERVER_AWAY = r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED"


def away(tab: Tab) -> None:
    tab.allow(SERVER_AWAY)


def test_the_page_reconnects_and_resumes_after_a_restart(new_tab: NewTab, server: Served) -> None:
    alice, bob = new_tab(), new_tab()
    away(alice)
    away(bob)
    alice.open()
    session_id = alice.create("through a restart", "durable")
    bob.open(f"#session={session_id}")
    bob.wait_open("through a restart")
    alice.send("before one")
    bob.send("before two")

    server.stop()
    for tab in (alice, bob):
        expect(tab.page.locator("#connection")).to_have_attribute("data-state", "waiting")
        expect(tab.page.locator("#connection-label")).to_contain_text("Disconnected")
    alice.composer.fill("while away")
    alice.composer.press("Enter")
    failed = alice.message("while away")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed.locator(".message-state")).to_contain_text("Not sent")

    server.start()
    url = f"{server.base}/api/sessions/{session_id}/messages"
    posted = httpx.post(url, json={"role": "assistant", "content": "during the comeback"})
    assert posted.status_code == 201
    for tab in (alice, bob):
        tab.wait_connected(RECONNECT_MS)
        expect(tab.message("during the comeback")).to_have_count(1)

    failed.get_by_role("button", name="Retry").click()
    expect(failed).to_have_attribute("data-status", "stored")
    expect(bob.message("while away")).to_have_count(1)
    bob.send("after")

    expected = ["before one", "before two", "during the comeback", "while away", "after"]
    alice.expect_texts(expected)
    bob.expect_texts(expected)
    stored = httpx.get(url).json()["data"]["messages"]
    assert [m["content"] for m in stored] == expected
    assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5]


def test_a_none_session_is_gone_after_a_restart(new_tab: NewTab, server: Served) -> None:
    tab = new_tab()
    away(tab)
    tab.open()
    kept = tab.create("durable survives", "durable")
    tab.send("still here")
    lost = tab.create("memory only", "none")
    tab.send("soon forgotten")

    server.restart()
    # the open page reads the list again once it is back
    tab.wait_connected(RECONNECT_MS)
    expect(tab.item("memory only")).to_have_count(0)
    expect(tab.item("durable survives")).to_have_count(1)
    assert httpx.get(f"{server.base}/api/sessions/{lost}").status_code == 404

    fresh = new_tab()  # a link to the lost session, opened anew
    fresh.open(f"#session={lost}")
    expect(fresh.page.locator("#chat-notice")).to_contain_text("does not exist any more")
    expect(fresh.item("memory only")).to_have_count(0)

    tab.switch_to("durable survives")
    tab.expect_texts(["still here"])
    assert tab.current_id() == kept
