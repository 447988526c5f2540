"""The WebSocket protocol over a real manager, driven in-process over ASGI: join and
history, resume with lastSeq, rooms, acks, idempotent sends, REST and session events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from types import TracebackType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from chatkeep.config import Config, ServerConfig
from chatkeep.core.clock import FakeClock
from chatkeep.manager import SessionManager
from chatkeep.server import create_app

from .support import new_session, ok

WAIT = 10.0


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class WsClient:
    """A WebSocket client that talks ASGI to an app in this event loop."""

    def __init__(
        self, app: FastAPI, path: str = "/ws", query: str = "", *, backlog: int = 0
    ) -> None:
        """``backlog``: frames the app can send before it waits for this client to read
        (0: no limit)."""
        self._app = app
        self._path = path
        self._query = query
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue(backlog)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsClient:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": self._path,
            "raw_path": self._path.encode(),
            "query_string": self._query.encode(),
            "headers": [(b"host", b"testserver")],
            "subprotocols": [],
        }
        self._task = asyncio.create_task(self._app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "websocket.connect"})
        first = await self._next()
        assert first["type"] == "websocket.accept", first
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        await self._to_app.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self._task, WAIT)

    async def _next(self) -> Message:
        assert self._task is not None
        getting = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait(
            {getting, self._task}, timeout=WAIT, return_when="FIRST_COMPLETED"
        )
        if getting in done:
            return getting.result()
        getting.cancel()
        if self._task in done:
            self._task.result()
            raise AssertionError("the app ended without closing the WebSocket")
        raise AssertionError(f"nothing came within {WAIT}s")

    async def send(self, type: str, **fields: Any) -> None:
        await self.send_text(json.dumps({"type": type, **fields}))

    async def send_text(self, text: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self._to_app.put({"type": "websocket.receive", "bytes": data})

    async def receive(self) -> dict[str, Any]:
        message = await self._next()
        if message["type"] == "websocket.close":
            raise Closed(message.get("code", 1000), message.get("reason", ""))
        assert message["type"] == "websocket.send", message
        frame: dict[str, Any] = json.loads(message["text"])
        return frame

    async def expect(self, type: str) -> dict[str, Any]:
        frame = await self.receive()
        assert frame["type"] == type, frame
        return frame

    async def error(self, code: str) -> dict[str, Any]:
        frame = await self.expect("error")
        assert frame["code"] == code, frame
        assert frame["message"]
        return frame

    async def nothing_pending(self) -> None:
        """Nothing was queued for this client before a pong (frames keep their order)."""
        await self.send("ping")
        await self.expect("pong")

    async def closed(self) -> Closed:
        with pytest.raises(Closed) as caught:
            await self.receive()
        return caught.value

    async def join(self, session_id: str, **fields: Any) -> list[dict[str, Any]]:
        """Join; the messages of the history frame."""
        await self.send("session:join", sessionId=session_id, **fields)
        loaded = await self.expect("session:loaded")
        assert loaded["sessionId"] == session_id
        history = await self.expect("messages:history")
        assert history["sessionId"] == session_id
        messages: list[dict[str, Any]] = history["messages"]
        return messages


def ws_app(manager: SessionManager, **limits: Any) -> FastAPI:
    return create_app(Config(server=ServerConfig(**limits)), manager)


@pytest.fixture
def app(manager: SessionManager) -> FastAPI:
    return ws_app(manager)


@pytest.fixture
async def rest(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def post(rest: httpx.AsyncClient, sid: str, *contents: str) -> list[dict[str, Any]]:
    body = [{"role": "user", "content": c} for c in contents]
    stored: list[dict[str, Any]] = ok(
        await rest.post(f"/api/sessions/{sid}/messages", json=body), 201
    )["messages"]
    return stored


async def test_a_join_gets_the_session_and_its_history(
    app: FastAPI, rest: httpx.AsyncClient
) -> None:
    sid = (await new_session(rest))["id"]
    await post(rest, sid, "one", "two")
    async with WsClient(app) as ws:
        history = await ws.join(sid)
    assert [(m["seq"], m["content"], m["sessionId"]) for m in history] == [
        (1, "one", sid),
        (2, "two", sid),
    ]


async def test_a_join_is_activity(
    app: FastAPI, rest: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = (await new_session(rest))["id"]
    before = ok(await rest.get(f"/api/sessions/{sid}"))
    fake_clock.advance(timedelta(minutes=5))
    async with WsClient(app) as ws:
        await ws.join(sid)
    after = ok(await rest.get(f"/api/sessions/{sid}"))
    assert after["lastActivity"] > before["lastActivity"]
    assert after["expiresAt"] > before["expiresAt"]


async def test_last_seq_gives_exactly_what_was_missed(
    app: FastAPI, rest: httpx.AsyncClient
) -> None:
    sid = (await new_session(rest))["id"]
    await post(rest, sid, *(f"m{i}" for i in range(1, 6)))
    async with WsClient(app) as ws:
        assert [m["seq"] for m in await ws.join(sid, lastSeq=3)] == [4, 5]
        assert await ws.join(sid, lastSeq=5) == []
        assert [m["content"] for m in await ws.join(sid, lastSeq=0)] == [
            f"m{i}" for i in range(1, 6)
        ]


async def test_two_members_and_the_ack(app: FastAPI, rest: httpx.AsyncClient) -> None:
    sid = (await new_session(rest))["id"]
    await post(rest, sid, "before")
    async with WsClient(app) as alice, WsClient(app) as bob:
        await alice.join(sid)
        await bob.join(sid)
        await alice.send("message:send", sessionId=sid, content="hello", clientId="c-1")
        ack = await alice.expect("message:ack")
        assert ack == {
            "type": "message:ack",
            "sessionId": sid,
            "clientId": "c-1",
            "id": "c-1",
            "seq": 2,
        }
        received = await bob.expect("message:received")
        assert received["sessionId"] == sid
        message = received["message"]
        assert (message["id"], message["seq"], message["content"], message["role"]) == (
            "c-1",
            2,
            "hello",
            "user",
        )
        await alice.nothing_pending()

        await bob.send("message:send", sessionId=sid, content={"n": 1}, role="assistant")
        bob_ack = await bob.expect("message:ack")
        assert bob_ack["clientId"] is None
        assert bob_ack["seq"] == 3
        got = (await alice.expect("message:received"))["message"]
        assert (got["id"], got["seq"], got["content"]) == (bob_ack["id"], 3, {"n": 1})
        await bob.nothing_pending()
    stored = ok(await rest.get(f"/api/sessions/{sid}/messages"))["messages"]
    assert [(m["id"], m["seq"]) for m in stored][1:] == [("c-1", 2), (bob_ack["id"], 3)]


async def test_the_senders_other_connection_gets_the_message(
    app: FastAPI, rest: httpx.AsyncClient
) -> None:
    sid = (await new_session(rest))["id"]
    async with WsClient(app) as tab1, WsClient(app) as tab2:
        await tab1.join(sid)
        await tab2.join(sid)
        await tab1.send("message:send", sessionId=sid, content="from tab 1")
        seq = (await tab1.expect("message:ack"))["seq"]
        assert (await tab2.expect("message:received"))["message"]["seq"] == seq


async def test_a_repeated_client_id_is_stored_and_told_once(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager
) -> None:
    sid = (await new_session(rest))["id"]
    async with WsClient(app) as alice, WsClient(app) as bob:
        await alice.join(sid)
        await bob.join(sid)
        for _ in range(2):
            await alice.send("message:send", sessionId=sid, content="once", clientId="k-1")
        first = await alice.expect("message:ack")
        second = await alice.expect("message:ack")
        assert first == second
        assert (first["id"], first["seq"]) == ("k-1", 1)
        assert (await bob.expect("message:received"))["message"]["id"] == "k-1"
        await bob.nothing_pending()
    assert [m.id for m in await manager.get_messages(sid)] == ["k-1"]
    assert ok(await rest.get(f"/api/sessions/{sid}"))["messageCount"] == 1


async def test_a_rest_append_reaches_the_members(app: FastAPI, rest: httpx.AsyncClient) -> None:
    sid = (await new_session(rest))["id"]
    other = (await new_session(rest))["id"]
    async with WsClient(app) as ws:
        await ws.join(sid)
        await post(rest, other, "elsewhere")
        stored = await post(rest, sid, "a", "b")
        for message in stored:
            assert (await ws.expect("message:received"))["message"] == message
        await ws.nothing_pending()


async def test_a_message_stored_during_a_join_comes_once(
    app: FastAPI, rest: httpx.AsyncClient
) -> None:
    sid = (await new_session(rest))["id"]
    await post(rest, sid, "old")
    async with WsClient(app) as ws:
        await ws.send("session:join", sessionId=sid)
        await post(rest, sid, "racing")
        await ws.expect("session:loaded")
        seen = [m["seq"] for m in (await ws.expect("messages:history"))["messages"]]
        while seen[-1] < 2:
            seen.append((await ws.expect("message:received"))["message"]["seq"])
        assert seen == [1, 2]
        await ws.nothing_pending()


async def test_leave_stops_delivery(app: FastAPI, rest: httpx.AsyncClient) -> None:
    sid = (await new_session(rest))["id"]
    async with WsClient(app) as ws:
        await ws.join(sid)
        await ws.send("session:leave", sessionId=sid)
        await ws.nothing_pending()
        await post(rest, sid, "unheard")
        await ws.nothing_pending()
        await ws.send("session:leave", sessionId=sid)
        assert (await ws.error("not_joined"))["sessionId"] == sid


async def test_a_delete_through_rest_tells_the_members(
    app: FastAPI, rest: httpx.AsyncClient
) -> None:
    sid = (await new_session(rest))["id"]
    async with WsClient(app) as alice, WsClient(app) as bob:
        await alice.join(sid)
        await bob.join(sid)
        ok(await rest.delete(f"/api/sessions/{sid}"))
        for ws in (alice, bob):
            assert await ws.expect("session:deleted") == {
                "type": "session:deleted",
                "sessionId": sid,
            }
        await alice.send("message:send", sessionId=sid, content="too late", clientId="x")
        error = await alice.error("not_joined")
        assert (error["sessionId"], error["clientId"]) == (sid, "x")


async def test_an_expired_session_tells_the_members(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager, fake_clock: FakeClock
) -> None:
    sid = (await new_session(rest, ttl=60))["id"]
    async with WsClient(app) as ws:
        await ws.join(sid)
        fake_clock.advance(timedelta(seconds=61))
        await manager.sweep()
        assert await ws.expect("session:expired") == {"type": "session:expired", "sessionId": sid}
        await ws.send("session:join", sessionId=sid)
        await ws.error("session_not_found")
        later = (await new_session(rest, ttl=60))["id"]
        fake_clock.advance(timedelta(seconds=61))
        await ws.send("session:join", sessionId=later)
        assert (await ws.error("session_expired"))["sessionId"] == later


async def test_join_errors_answer_with_the_error_table_codes(app: FastAPI) -> None:
    async with WsClient(app) as ws:
        await ws.send("session:join", sessionId="no-such-session")
        error = await ws.error("session_not_found")
        assert error["sessionId"] == "no-such-session"
        await ws.send("session:join", sessionId="bad id!")
        await ws.error("invalid_input")
        await ws.send("message:send", sessionId="no-such-session", content="x")
        await ws.error("not_joined")
        await ws.nothing_pending()


async def test_join_with_create_makes_the_session(app: FastAPI, rest: httpx.AsyncClient) -> None:
    async with WsClient(app) as ws:
        await ws.send("session:join", sessionId="chat-1", create=True)
        created = await ws.expect("session:created")
        assert (created["sessionId"], created["session"]["id"]) == ("chat-1", "chat-1")
        assert (await ws.expect("messages:history"))["messages"] == []
        await ws.send("message:send", sessionId="chat-1", content="hi")
        assert (await ws.expect("message:ack"))["seq"] == 1
        await ws.send("session:join", sessionId="chat-1", create=True, lastSeq=1)
        await ws.expect("session:loaded")
    assert ok(await rest.get("/api/sessions/chat-1"))["messageCount"] == 1


async def test_the_chat_path_joins_the_session_of_its_query(
    app: FastAPI, rest: httpx.AsyncClient
) -> None:
    async with WsClient(app, "/ws/chat/", "session=room-7") as ws:
        await ws.expect("session:created")
        await ws.expect("messages:history")
        await ws.send("message:send", sessionId="room-7", content="one")
        await ws.expect("message:ack")
    await post(rest, "room-7", "two")
    async with WsClient(app, "/ws/chat/", "session=room-7&lastSeq=1") as ws:
        await ws.expect("session:loaded")
        history = (await ws.expect("messages:history"))["messages"]
        assert [(m["seq"], m["content"]) for m in history] == [(2, "two")]
    async with WsClient(app, "/ws/chat/", "session=room-7&lastSeq=minus") as ws:
        assert "lastSeq" in (await ws.error("validation_error"))["message"]
        await ws.nothing_pending()


async def test_a_client_mode_session_relays_without_storing(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager
) -> None:
    sid = (await new_session(rest, persistence="client"))["id"]
    async with WsClient(app) as alice, WsClient(app) as bob:
        for ws in (alice, bob):
            await ws.send("session:join", sessionId=sid)
            await ws.expect("session:loaded")
            history = await ws.expect("messages:history")
            assert (history["messages"], history["historyOnClient"]) == ([], True)
        await alice.send(
            "message:send", sessionId=sid, content="kept on the client", clientId="r-1"
        )
        ack = await alice.expect("message:ack")
        assert (ack["id"], ack["seq"]) == ("r-1", 0)
        relayed = (await bob.expect("message:received"))["message"]
        assert (relayed["id"], relayed["seq"], relayed["content"]) == (
            "r-1",
            0,
            "kept on the client",
        )
        await alice.nothing_pending()
        await bob.send("message:send", sessionId=sid, content="no id")
        assert (await bob.expect("message:ack"))["id"] == (await alice.expect("message:received"))[
            "message"
        ]["id"]
        await bob.send("message:send", sessionId=sid, content="x", clientId="bad id!")
        await bob.error("invalid_input")
    assert (await manager.get_session(sid)).message_count == 0
