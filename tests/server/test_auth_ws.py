"""Authentication on the WebSocket: a credential to connect, and only one's own sessions
to join."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from chatkeep.manager import SessionManager

from .auth_support import KEY_A, KEY_B, auth_app, bearer, connected, token_for
from .support import new_session, ok
from .test_ws import WAIT, WsClient


@pytest.fixture
def app(manager: SessionManager) -> FastAPI:
    return auth_app(manager)


async def first_answer(app: FastAPI, path: str, query: str, headers: dict[str, str]) -> Any:
    """What the app answers a WebSocket handshake with (accept or close)."""
    sent: asyncio.Queue[Any] = asyncio.Queue()
    received: asyncio.Queue[Any] = asyncio.Queue()
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "subprotocols": [],
    }
    task = asyncio.create_task(app(scope, received.get, sent.put))
    await received.put({"type": "websocket.connect"})
    answer = await asyncio.wait_for(sent.get(), WAIT)
    await received.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, WAIT)
    return answer


async def alices_session(app: FastAPI) -> str:
    async with connected(app, bearer(KEY_A)) as alice:
        sid: str = (await new_session(alice))["id"]
        message = {"role": "user", "content": "for alice only"}
        ok(await alice.post(f"/api/sessions/{sid}/messages", json=message), 201)
    return sid


@pytest.mark.parametrize("path", ["/ws", "/ws/chat/"])
@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", {}),
        ("token=not-a-key-of-this-server", {}),
        ("", bearer("not-a-key-of-this-server")),
        (f"token={KEY_A}", bearer("not-a-key-of-this-server")),
    ],
)
async def test_a_websocket_without_a_valid_credential_is_closed_before_accept(
    app: FastAPI, path: str, query: str, headers: dict[str, str]
) -> None:
    answer = await first_answer(app, path, query, headers)
    assert answer["type"] == "websocket.close", answer
    assert answer["code"] == 4401
    assert answer["reason"]


@pytest.mark.parametrize(("query", "headers"), [(f"token={KEY_A}", {}), ("", bearer(KEY_A))])
async def test_a_websocket_with_a_key_is_accepted(
    app: FastAPI, query: str, headers: dict[str, str]
) -> None:
    answer = await first_answer(app, "/ws", query, headers)
    assert answer["type"] == "websocket.accept", answer


async def test_the_owner_joins_with_a_query_token(app: FastAPI, manager: SessionManager) -> None:
    sid = await alices_session(app)
    async with WsClient(app, query=f"token={token_for(manager, 'alice')}") as ws:
        history = await ws.join(sid)
    assert [m["content"] for m in history] == ["for alice only"]


async def test_another_owner_cannot_join(app: FastAPI) -> None:
    sid = await alices_session(app)
    async with WsClient(app, query=f"token={KEY_B}") as ws:
        await ws.send("session:join", sessionId=sid)
        hidden = await ws.error("session_not_found")
        await ws.send("session:join", sessionId="no-such-session")
        missing = await ws.error("session_not_found")
        assert hidden["message"] == missing["message"].replace("no-such-session", sid)
        await ws.send("message:send", sessionId=sid, content="from bob")
        await ws.error("not_joined")
        await ws.nothing_pending()
    async with connected(app, bearer(KEY_A)) as alice:
        history = ok(await alice.get(f"/api/sessions/{sid}/history"))
    assert [m["content"] for m in history["history"]] == ["for alice only"]


async def test_another_owner_cannot_join_by_the_chat_path(app: FastAPI) -> None:
    sid = await alices_session(app)
    async with WsClient(app, "/ws/chat/", f"session={sid}&token={KEY_B}") as ws:
        await ws.error("session_not_found")
        await ws.nothing_pending()


async def test_a_session_created_by_joining_belongs_to_the_caller(app: FastAPI) -> None:
    async with WsClient(app, "/ws/chat/", f"session=made-by-bob&token={KEY_B}") as ws:
        created = await ws.expect("session:created")
        assert created["sessionId"] == "made-by-bob"
    async with connected(app, bearer(KEY_B)) as bob:
        assert ok(await bob.get("/api/sessions/made-by-bob"))["owner"] == "bob"
    async with WsClient(app, "/ws/chat/", f"session=made-by-bob&token={KEY_A}") as ws:
        await ws.error("session_not_found")
