"""A server with authentication on: the page asks for a token, keeps it for the tab,
sends it on every call and on the WebSocket, and says when a token is refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import NewTab, serving
from .served import Served
from .tab import Tab

pytestmark = pytest.mark.slow  # a real server and a real browser

KEY = "alice-key-for-the-page-0123"
UNAUTHORIZED = r"status of 401"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(tmp_path_factory.mktemp("auth"), {"CHATKEEP_API_KEYS": f"{KEY}:alice"})


def give_token(tab: Tab, token: str) -> None:
    dialog = tab.page.get_by_role("dialog", name="Access token")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Token")).to_be_focused()
    dialog.get_by_label("Token").fill(token)
    dialog.get_by_role("button", name="Use token").click()


def test_the_page_asks_for_a_token_and_keeps_it_for_the_tab(
    new_tab: NewTab, server: Served
) -> None:
    tab = new_tab()
    tab.allow(UNAUTHORIZED)
    tab.page.goto(server.base + "/")
    give_token(tab, "not-a-valid-key-at-all")
    dialog = tab.page.get_by_role("dialog", name="Access token")
    expect(dialog.get_by_role("alert")).to_contain_text("The token was refused")
    give_token(tab, KEY)
    expect(dialog).to_be_hidden()
    tab.wait_connected()
    expect(tab.page.locator("#sessions-status")).to_have_text(
        "No sessions yet. Create one to start chatting."
    )

    session_id = tab.create("alice's", "durable")
    tab.send("with a token")
    headers = {"Authorization": f"Bearer {KEY}"}
    stored = httpx.get(f"{server.base}/api/sessions/{session_id}", headers=headers)
    assert stored.json()["data"]["owner"] == "alice"
    assert httpx.get(f"{server.base}/api/sessions/{session_id}").status_code == 401

    tab.reload()  # the same tab keeps its token
    expect(tab.page.get_by_role("dialog", name="Access token")).to_be_hidden()
    tab.switch_to("alice's")
    tab.expect_texts(["with a token"])

    other = new_tab()  # another tab (here another browser) has to give it again
    other.allow(UNAUTHORIZED)
    other.page.goto(server.base + "/")
    give_token(other, KEY)
    other.wait_connected()
    expect(other.item("alice's")).to_have_count(1)

    tab.page.get_by_role("button", name="Forget token").click()
    expect(tab.page.get_by_role("dialog", name="Access token")).to_be_visible()


def test_the_default_mode_is_the_server_configuration_here(new_tab: NewTab) -> None:
    tab = new_tab()
    tab.allow(UNAUTHORIZED)
    tab.allow(r"status of 403")  # the refused change, on purpose
    tab.page.goto(tab.base + "/")
    give_token(tab, KEY)
    tab.wait_connected()
    tab.page.get_by_role("button", name="Settings").click()
    dialog = tab.page.get_by_role("dialog", name="Settings")
    dialog.get_by_label("Default persistence").select_option("none")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("status")).to_have_text(
        "Not saved: this server's configuration sets it."
    )
    expect(dialog.get_by_label("Default persistence")).to_have_value("durable")
