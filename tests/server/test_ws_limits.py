"""The WebSocket's failure paths and limits: bad frames get an error frame, a frame too
large or a silent client a close code; the session and rate limits an error frame."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chatkeep.core.clock import FakeClock
from chatkeep.core.models import NewMessage
from chatkeep.manager import SessionManager
from chatkeep.server.errors import CloseCode
from chatkeep.server.ws import MAX_PENDING

from .test_ws import Closed, WsClient, ws_app


@pytest.mark.parametrize(
    ("frame", "code", "names"),
    [
        ("{not json", "invalid_json", "JSON"),
        ("[1, 2]", "validation_error", ""),
        ('"ping"', "validation_error", ""),
        ('{"sessionId": "s"}', "validation_error", "type"),
        ('{"type": "session:dance"}', "validation_error", "session:dance"),
        ('{"type": "session:join"}', "validation_error", "sessionId"),
        (
            '{"type": "session:join", "sessionId": "s", "lastSeq": -1}',
            "validation_error",
            "lastSeq",
        ),
        ('{"type": "message:send", "sessionId": "s"}', "validation_error", "content"),
        (
            '{"type": "message:send", "sessionId": "s", "content": "x", "role": "boss"}',
            "validation_error",
            "role",
        ),
        ('{"type": "ping", "extra": 1}', "validation_error", "extra"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame(
    manager: SessionManager, frame: str, code: str, names: str
) -> None:
    async with WsClient(ws_app(manager)) as ws:
        await ws.send_text(frame)
        error = await ws.error(code)
        assert names in error["message"]
        await ws.nothing_pending()


async def test_a_binary_frame_gets_an_error_frame(manager: SessionManager) -> None:
    async with WsClient(ws_app(manager)) as ws:
        await ws.send_bytes(json.dumps({"type": "ping"}).encode())
        assert "binary" in (await ws.error("validation_error"))["message"]
        await ws.nothing_pending()


async def test_a_frame_over_the_limit_closes_the_connection(manager: SessionManager) -> None:
    limit = 1024
    async with WsClient(ws_app(manager, ws_max_frame_bytes=limit)) as ws:
        await ws.send("ping", pad="x" * (limit - 100))
        await ws.error("validation_error")
        await ws.send("ping", pad="é" * (limit // 2))
        closed = await ws.closed()
        assert closed.code == CloseCode.MESSAGE_TOO_BIG == 1009
        assert str(limit) in closed.reason


async def test_the_sessions_joined_per_connection_are_limited(manager: SessionManager) -> None:
    ids = [(await manager.create_session()).id for _ in range(3)]
    async with WsClient(ws_app(manager, ws_max_sessions=2)) as ws:
        await ws.join(ids[0])
        await ws.join(ids[1])
        await ws.send("session:join", sessionId=ids[2])
        error = await ws.error("too_many_sessions")
        assert (error["sessionId"], "2" in error["message"]) == (ids[2], True)
        await ws.join(ids[1], lastSeq=0)
        await ws.send("session:leave", sessionId=ids[0])
        await ws.join(ids[2])


async def test_a_failed_join_does_not_count_against_the_limit(manager: SessionManager) -> None:
    sid = (await manager.create_session()).id
    async with WsClient(ws_app(manager, ws_max_sessions=1)) as ws:
        await ws.send("session:join", sessionId="missing")
        await ws.error("session_not_found")
        await ws.join(sid)


async def test_the_send_rate_is_limited_by_a_token_bucket(
    manager: SessionManager, fake_clock: FakeClock
) -> None:
    sid = (await manager.create_session()).id
    async with WsClient(ws_app(manager, ws_send_rate=2, ws_send_burst=3)) as ws:
        for _ in range(3):
            await ws.send("ping")
        await ws.send("message:send", sessionId=sid, content="dropped")
        for _ in range(3):
            await ws.expect("pong")
        assert "2 frames a second" in (await ws.error("rate_limited"))["message"]
        fake_clock.advance(timedelta(seconds=0.5))
        await ws.nothing_pending()
        await ws.send("ping")
        await ws.error("rate_limited")
        fake_clock.advance(timedelta(seconds=10))
        for _ in range(3):
            await ws.nothing_pending()
    assert (await manager.get_session(sid)).message_count == 0


async def test_a_silent_connection_is_closed(manager: SessionManager) -> None:
    app = ws_app(manager, ws_idle_timeout=timedelta(milliseconds=50))
    async with WsClient(app) as ws:
        closed = await ws.closed()
    assert closed.code == CloseCode.REQUEST_TIMEOUT == 4408


async def test_pings_keep_a_connection_open(manager: SessionManager) -> None:
    async with WsClient(ws_app(manager, ws_idle_timeout=timedelta(seconds=30))) as ws:
        for _ in range(5):
            await ws.nothing_pending()


async def test_a_closed_manager_closes_no_connection(manager: SessionManager) -> None:
    """A store that cannot serve a request gets an error frame; the connection lives."""
    app = ws_app(manager)
    sid = (await manager.create_session()).id
    async with WsClient(app) as ws:
        await ws.join(sid)
        for store in manager.stores.values():
            await store.close()
        await ws.send("message:send", sessionId=sid, content="x", clientId="c")
        error = await ws.error("store_unavailable")
        assert error["clientId"] == "c"
        await ws.nothing_pending()


async def test_a_client_too_far_behind_is_closed_and_can_resume(manager: SessionManager) -> None:
    app = ws_app(manager)
    sid = (await manager.create_session(max_messages=MAX_PENDING * 2)).id
    async with WsClient(app, backlog=1) as ws:
        await ws.join(sid)
        half = MAX_PENDING // 2
        for start in range(0, 3 * half, half):
            await manager.append(sid, [NewMessage("user", f"m{start + n}") for n in range(half)])
        frames = 0
        with pytest.raises(Closed) as closed:
            while True:
                assert (await ws.receive())["type"] == "message:received"
                frames += 1
    assert closed.value.code == CloseCode.TRY_AGAIN_LATER == 1013
    assert frames < MAX_PENDING
    async with WsClient(app) as ws:
        history = await ws.join(sid, lastSeq=MAX_PENDING)
    assert [m["seq"] for m in history] == list(range(MAX_PENDING + 1, 3 * half + 1))
