"""The WebSocket session between two clients of a server on a free port."""

from __future__ import annotations

import asyncio

import pytest

from chatkeep import SessionNotFoundError
from chatkeep.client import (
    AsyncClient,
    ClientAuthError,
    ServerError,
    ServerUnreachableError,
    WebSocketSession,
)
from chatkeep.client.ws import Frame, ws_url

from .conftest import KEYS, free_port

WAIT = 10.0


async def test_join_send_ack_receive_and_resume(live: str) -> None:
    async with AsyncClient(live) as api:
        sid = (await api.create_session()).id
    async with (
        await WebSocketSession.open(live) as alice,
        await WebSocketSession.open(live) as bob,
    ):
        assert await alice.join(sid) == []
        assert await bob.join(sid) == []
        ack = await alice.send(sid, "hi bob", client_id="m-1")
        assert (ack["clientId"], ack["seq"]) == ("m-1", 1)
        got = await asyncio.wait_for(_next_message(bob), WAIT)
        assert got["message"]["content"] == "hi bob"
        assert got["message"]["seq"] == 1
        again = await alice.send(sid, "hi bob", client_id="m-1")
        assert again["id"] == ack["id"]
        await alice.send(sid, "second", client_id="m-2")
        await alice.send(sid, "third", client_id="m-3")
    async with await WebSocketSession.open(live) as late:
        resumed = await late.join(sid, last_seq=1)
        assert [(m.seq, m.content) for m in resumed] == [(2, "second"), (3, "third")]
        assert [m.seq for m in await late.join(sid, last_seq=3)] == []
        whole = await late.join(sid)
        assert [m.seq for m in whole] == [1, 2, 3]


async def test_frames_can_be_iterated(live: str) -> None:
    async with AsyncClient(live) as api:
        sid = (await api.create_session()).id
    async with (
        await WebSocketSession.open(live) as one,
        await WebSocketSession.open(live) as two,
    ):
        await one.join(sid)
        await two.join(sid)
        await one.send(sid, "a", client_id="a-1")
        await one.send(sid, "b", client_id="b-1")
        await one.ping()
        seen: list[str] = []
        async for frame in two:
            if frame["type"] == "message:received":
                seen.append(frame["message"]["content"])
            if len(seen) == 2:
                break
        assert seen == ["a", "b"]


async def test_join_unknown_session(live: str) -> None:
    async with await WebSocketSession.open(live) as ws:
        with pytest.raises(SessionNotFoundError):
            await ws.join("no-such-session")
        await ws.ping()


async def test_auth_on_the_websocket(live_secured: str) -> None:
    with pytest.raises(ClientAuthError):
        await WebSocketSession.open(live_secured)
    alice_key, bob_key = KEYS[0][0], KEYS[1][0]
    async with AsyncClient(live_secured, token=alice_key) as alice_api:
        sid = (await alice_api.create_session()).id
    async with await WebSocketSession.open(live_secured, token=bob_key) as bob:
        with pytest.raises(SessionNotFoundError):
            await bob.join(sid)
    async with await WebSocketSession.open(live_secured, token=alice_key) as alice:
        assert await alice.join(sid) == []
        assert (await alice.send(sid, "mine", client_id="x-1"))["seq"] == 1


async def test_send_without_joining(live: str) -> None:
    async with await WebSocketSession.open(live) as ws:
        with pytest.raises(ServerError) as caught:
            await ws.send("never-joined", "x", client_id="n-1")
        assert caught.value.code == "not_joined"


async def test_nothing_listening() -> None:
    with pytest.raises(ServerUnreachableError):
        await WebSocketSession.open(f"http://127.0.0.1:{free_port()}")


def test_ws_url() -> None:
    assert ws_url("http://h:1") == "ws://h:1/ws"
    assert ws_url("https://h/base/") == "wss://h/base/ws"


async def _next_message(ws: WebSocketSession) -> Frame:
    while True:
        frame = await ws.receive()
        if frame["type"] == "message:received":
            return frame
