"""The chat view: sending with Enter, messages from other members live, history on
reload (on the server, or in the browser for a ``client`` session), the server's own
messages arriving live, each shown once."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import WebSocketRoute, expect

from .conftest import NewTab
from .served import Served
from .tab import Tab

pytestmark = pytest.mark.slow  # a real server and a real browser


@pytest.mark.parametrize("mode", ["durable", "client", "none"])
def test_two_people_in_one_session_see_each_other(
    new_tab: NewTab, server: Served, mode: str
) -> None:
    alice, bob = new_tab(), new_tab()
    alice.open()
    session_id = alice.create(f"talk in {mode}", mode)
    bob.open()
    bob.switch_to(f"talk in {mode}")

    alice.send("hi bob")
    expect(bob.message("hi bob")).to_have_count(1)
    bob.send("hi alice")
    expect(alice.message("hi alice")).to_have_count(1)
    alice.send("how are you?")

    expected = ["hi bob", "hi alice", "how are you?"]
    alice.expect_texts(expected)
    bob.expect_texts(expected)
    expect(alice.message("hi bob").locator(".who")).to_have_text("user (you)")
    expect(bob.message("hi bob").locator(".who")).to_have_text("user")
    if mode != "client":
        stored = httpx.get(f"{server.base}/api/sessions/{session_id}/messages").json()
        assert [m["content"] for m in stored["data"]["messages"]] == expected


def test_a_message_stored_elsewhere_appears_live(new_tab: NewTab, server: Served) -> None:
    tab = new_tab()
    tab.open()
    session_id = tab.create("with an agent", "durable")
    tab.send("question")
    body = {"role": "assistant", "content": "answer", "clientId": "agent-1"}
    url = f"{server.base}/api/sessions/{session_id}/messages"
    assert httpx.post(url, json=body).status_code == 201
    expect(tab.message("answer").locator(".who")).to_have_text("assistant")
    assert httpx.post(url, json=body).status_code == 201  # the same id again: stored once
    tab.send("thanks")
    tab.expect_texts(["question", "answer", "thanks"])


def reloaded_after_two_messages(tab: Tab, title: str, mode: str, texts: list[str]) -> str:
    """Create a session, send ``texts``, reload the page: the history is there again."""
    tab.open()
    session_id = tab.create(title, mode)
    for text in texts:
        tab.send(text)
    tab.reload()
    tab.wait_open(title)
    tab.expect_texts(texts)
    return session_id


def open_elsewhere(new_tab: NewTab, session_id: str, title: str) -> Tab:
    other = new_tab()
    other.open(f"#session={session_id}")
    other.wait_open(title)
    return other


def test_a_durable_history_survives_a_reload(new_tab: NewTab) -> None:
    tab = new_tab()
    texts = ["first", "second"]
    session_id = reloaded_after_two_messages(tab, "kept on the server", "durable", texts)
    expect(tab.item("kept on the server").locator(".session-meta")).to_contain_text("2 messages")
    # another device sees it too: the history is the server's
    open_elsewhere(new_tab, session_id, "kept on the server").expect_texts(texts)


def test_a_client_history_lives_in_the_browser_only(new_tab: NewTab, server: Served) -> None:
    tab = new_tab()
    texts = ["local one", "local two"]
    session_id = reloaded_after_two_messages(tab, "kept in the browser", "client", texts)
    expect(tab.item("kept in the browser").locator(".session-meta")).to_contain_text(
        "2 messages here"
    )

    kept = tab.page.evaluate(f"localStorage.getItem('chatkeep:history:{session_id}')")
    assert [m["content"] for m in json.loads(kept)] == ["local one", "local two"]
    history = httpx.get(f"{server.base}/api/sessions/{session_id}/history").json()["data"]
    assert (history["history"], history["historyOnClient"]) == ([], True)
    session = httpx.get(f"{server.base}/api/sessions/{session_id}").json()["data"]
    assert session["messageCount"] == 0

    elsewhere = open_elsewhere(new_tab, session_id, "kept in the browser")
    elsewhere.expect_texts([])  # another browser has none of it
    tab.send("live still works")
    expect(elsewhere.message("live still works")).to_have_count(1)


def test_a_long_message_keeps_its_lines_and_stays_text(new_tab: NewTab) -> None:
    tab = new_tab()
    tab.open()
    tab.create("formatting", "durable")
    tab.composer.fill("line one")
    tab.composer.press("Shift+Enter")
    tab.composer.press_sequentially("<b>not bold</b>")
    tab.composer.press("Enter")
    body = tab.page.locator("#messages .message-body").last
    expect(body).to_have_text("line one\n<b>not bold</b>")
    assert body.locator("b").count() == 0
    expect(tab.composer).to_have_value("")


class Relay:
    """The page's WebSockets, relayed to the server through the browser's router: the
    test can cut the connection, keep the page from reconnecting, and read what it sent."""

    def __init__(self) -> None:
        self.blocked = False
        self.open: list[WebSocketRoute] = []
        self.sent: list[dict[str, Any]] = []

    def route(self, page_side: WebSocketRoute) -> None:
        if self.blocked:
            page_side.close(code=4503, reason="blocked by the test")
            return
        server_side = page_side.connect_to_server()

        def forward(message: str | bytes) -> None:
            if isinstance(message, str):
                self.sent.append(json.loads(message))
            server_side.send(message)

        page_side.on_message(forward)
        self.open.append(page_side)

    def cut(self) -> None:
        self.blocked = True
        for page_side in self.open:
            page_side.close(code=4503, reason="cut by the test")
        self.open.clear()


def test_a_dropped_connection_resumes_from_the_last_seq(new_tab: NewTab, server: Served) -> None:
    tab = new_tab()
    relay = Relay()
    tab.page.route_web_socket(re.compile(r".*/ws(\?.*)?$"), relay.route)
    tab.open()
    session_id = tab.create("resumed", "durable")
    tab.send("one")
    tab.send("two")

    relay.cut()
    expect(tab.page.locator("#connection")).to_have_attribute("data-state", "waiting")
    url = f"{server.base}/api/sessions/{session_id}/messages"
    for text in ("missed three", "missed four"):
        assert httpx.post(url, json={"role": "assistant", "content": text}).status_code == 201
    relay.sent.clear()
    relay.blocked = False

    tab.wait_connected()
    tab.expect_texts(["one", "two", "missed three", "missed four"])
    joins = [f for f in relay.sent if f["type"] == "session:join"]
    assert joins == [{"type": "session:join", "sessionId": session_id, "lastSeq": 2}]
    tab.send("five")
    stored = httpx.get(url).json()["data"]["messages"]
    assert [(m["seq"], m["content"]) for m in stored] == [
        (1, "one"),
        (2, "two"),
        (3, "missed three"),
        (4, "missed four"),
        (5, "five"),
    ]
    tab.expect_texts([m["content"] for m in stored])
