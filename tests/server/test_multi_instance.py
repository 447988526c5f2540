"""Two real ``chatkeep serve`` processes sharing PostgreSQL (the durable store, a schema of
this test's own) and Redis (the channel between them, a prefix of this test's own): what is
stored through one reaches the WebSocket members and lobby watchers of the other, once;
a device's first requests to both at once end with one session."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from failure.conftest import REDIS_URL, require_port, with_option
from failure.conftest import shared_postgres_url as shared_postgres_url  # the fixture

from .support import ok
from .test_serve import READY_WITHIN, free_port, start, stop
from .test_serve import clean_env as clean_env  # the fixture
from .test_serve import serve as serve  # the fixture
from .test_serve import server_env as server_env  # the fixture
from .test_ws_serve import frame, join, say

pytestmark = pytest.mark.slow


def wait_channel(base: str) -> None:
    """Poll /readyz until the instance's channel to the others is up."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        body = httpx.get(f"{base}/readyz", timeout=2).json()
        if body.get("success") and (body["data"].get("channel") or {}).get("up"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the channel of {base} was not up within {READY_WITHIN}s")


@pytest.fixture
def instances(
    shared_postgres_url: str,
    clean_env: dict[str, str],
    serve: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """Two servers over one PostgreSQL schema and one Redis channel prefix (``serve``
    kills whatever is left running at the end)."""
    require_port(REDIS_URL, 6379)
    env = dict(clean_env)
    env["DATABASE_URL"] = shared_postgres_url
    env["CHANNEL_REDIS_URL"] = with_option(REDIS_URL, "prefix", f"ckmulti{secrets.token_hex(6)}")
    env["CHATKEEP_SWEEP_INTERVAL"] = "1h"
    bases = [
        start(serve, {**env, "STORAGE_DATABASE_PATH": str(tmp_path / n)}, tmp_path, free_port())
        for n in ("a", "b")
    ]
    for base in bases:
        wait_channel(base)
    yield bases[0], bases[1]
    for process in serve:
        stop(process)


async def received(ws: ClientConnection) -> tuple[int, str]:
    message: dict[str, Any] = (await frame(ws, "message:received"))["message"]
    return message["seq"], message["content"]


async def quiet(*sockets: ClientConnection) -> None:
    """Nothing else was sent to these connections (a ping is answered after it)."""
    for ws in sockets:
        await ws.send(json.dumps({"type": "ping"}))
        await frame(ws, "pong")


async def test_two_instances_share_rooms_and_the_lobby(instances: tuple[str, str]) -> None:
    base_a, base_b = instances
    ws_a, ws_b = (base.replace("http://", "ws://") + "/ws" for base in instances)
    async with (
        httpx.AsyncClient(base_url=base_a) as rest_a,
        httpx.AsyncClient(base_url=base_b) as rest_b,
        connect(ws_a) as alice,
        connect(ws_b) as bob,
        connect(ws_b) as lobby_b,
        connect(ws_a) as lobby_a,
    ):
        for watcher in (lobby_a, lobby_b):
            await watcher.send(json.dumps({"type": "sessions:watch"}))
        await quiet(lobby_a, lobby_b)
        session = ok(await rest_a.post("/api/sessions", json={"tags": ["multi"]}), 201)
        sid = session["id"]
        for watcher in (lobby_a, lobby_b):
            assert (await frame(watcher, "session:created"))["session"] == session

        assert await join(alice, sid) == []
        assert await join(bob, sid) == []
        assert await say(alice, sid, "from a", "a-1") == 1
        assert await received(bob) == (1, "from a")
        assert await say(bob, sid, "from b", "b-1") == 2
        assert await received(alice) == (2, "from b")

        body = {"role": "assistant", "content": "rest on b"}
        ok(await rest_b.post(f"/api/sessions/{sid}/messages", json=body), 201)
        assert await received(alice) == (3, "rest on b")
        assert await received(bob) == (3, "rest on b")
        await quiet(alice, bob)

        ok(await rest_a.delete(f"/api/sessions/{sid}"))
        for ws in (alice, bob, lobby_a, lobby_b):
            assert await frame(ws, "session:deleted") == {
                "type": "session:deleted",
                "sessionId": sid,
            }
        made_on_b = ok(await rest_b.post("/api/sessions", json={}), 201)
        for watcher in (lobby_a, lobby_b):
            assert (await frame(watcher, "session:created"))["sessionId"] == made_on_b["id"]
        await quiet(alice, bob, lobby_a, lobby_b)

        device = "5b9f1abf-f180-456d-8a3e-0123456789ab"
        path, headers = f"/api/devices/{device}/session", {"X-Device-ID": device}
        answers = await asyncio.gather(
            *(rest.get(path, headers=headers) for rest in (rest_a, rest_b) * 3)
        )
        assert sorted(a.status_code for a in answers) == [200] * 5 + [201], answers
        assert len({a.json()["data"]["id"] for a in answers}) == 1
        listed = ok(await rest_b.get("/api/sessions", params={"deviceId": device}))
        assert listed["count"] == 1
