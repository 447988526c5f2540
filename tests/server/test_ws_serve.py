"""A real ``chatkeep serve`` process: two WebSocket clients in one session, and a client
that reconnects with ``lastSeq`` and gets exactly what it missed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from chatkeep.config import SETTINGS

from .support import ok
from .test_serve import free_port, start, stop

WAIT = 10.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A server on a free port over a fresh data directory; always stopped afterwards."""
    names = {name for setting in SETTINGS for name in setting.env_names}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["STORAGE_DATABASE_PATH"] = str(tmp_path / "data")
    started: list[subprocess.Popen[str]] = []
    try:
        base = start(started, env, tmp_path, free_port())
        yield base, started[0]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


async def frame(ws: ClientConnection, type: str) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert got["type"] == type, got
    return got


async def join(ws: ClientConnection, sid: str, **fields: Any) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "session:join", "sessionId": sid, **fields}))
    await frame(ws, "session:loaded")
    messages: list[dict[str, Any]] = (await frame(ws, "messages:history"))["messages"]
    return messages


async def say(ws: ClientConnection, sid: str, content: str, client_id: str) -> int:
    body = {"type": "message:send", "sessionId": sid, "content": content, "clientId": client_id}
    await ws.send(json.dumps(body))
    ack = await frame(ws, "message:ack")
    assert (ack["id"], ack["clientId"]) == (client_id, client_id)
    seq: int = ack["seq"]
    return seq


@pytest.mark.slow
async def test_two_clients_talk_and_one_resumes(
    server: tuple[str, subprocess.Popen[str]],
) -> None:
    base, process = server
    url = base.replace("http://", "ws://") + "/ws"
    async with httpx.AsyncClient(base_url=base) as rest:
        sid = ok(await rest.post("/api/sessions", json={}), 201)["id"]
        async with connect(url) as alice:
            async with connect(url) as bob:
                assert await join(alice, sid) == []
                assert await join(bob, sid) == []
                assert await say(alice, sid, "hi bob", "a-1") == 1
                assert (await frame(bob, "message:received"))["message"]["content"] == "hi bob"
                assert await say(bob, sid, "hi alice", "b-1") == 2
                assert (await frame(alice, "message:received"))["message"]["id"] == "b-1"
                seen = 2
            missed = [await say(alice, sid, f"missed {n}", f"a-{n}") for n in (2, 3)]
            assert missed == [3, 4]
            ok(
                await rest.post(
                    f"/api/sessions/{sid}/messages", json={"role": "assistant", "content": "rest"}
                ),
                201,
            )
            async with connect(url) as bob_again:
                history = await join(bob_again, sid, lastSeq=seen)
                assert [(m["seq"], m["content"]) for m in history] == [
                    (3, "missed 2"),
                    (4, "missed 3"),
                    (5, "rest"),
                ]
                assert await say(bob_again, sid, "back", "b-2") == 6
                assert (await frame(alice, "message:received"))["message"]["seq"] == 5
                assert (await frame(alice, "message:received"))["message"]["seq"] == 6
            await alice.send(json.dumps({"type": "ping"}))
            await frame(alice, "pong")
        stored = ok(await rest.get(f"/api/sessions/{sid}/messages"))["messages"]
        assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5, 6]
    stop(process)
