"""Two server instances in one process, each with its own manager over one shared store,
joined by Redis pub/sub: messages, deletions and lobby frames cross between them once,
and an outage of the channel's Redis is survived (local delivery goes on, the state is
visible, it reconnects and hands over what was missed)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from chatkeep.config import Config, ServerConfig
from chatkeep.core.models import Persistence
from chatkeep.manager import ManagerConfig, SessionManager
from chatkeep.server import create_app
from chatkeep.server.fanout import Fanout, split_url
from chatkeep.server.rooms import Rooms
from chatkeep.stores import open_store
from chatkeep.stores.base import Store
from failure.conftest import REDIS_URL, RedisServer, require_port, with_option
from failure.conftest import redis_server as redis_server  # the fixture

from .support import new_session, ok
from .test_ws import WAIT, WsClient
from .test_ws import app as app  # the fixture
from .test_ws import rest as rest  # the fixture


@dataclass
class Instance:
    app: FastAPI
    manager: SessionManager
    rest: httpx.AsyncClient

    @property
    def fanout(self) -> Fanout:
        fanout = self.app.state.fanout
        assert isinstance(fanout, Fanout)
        return fanout


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (polling) until ``condition()`` holds; fail after ``WAIT`` seconds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        if condition():
            return
        assert asyncio.get_running_loop().time() < deadline, f"expected: {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def instance(store: Store, channel_url: str, *, up: bool = True) -> AsyncIterator[Instance]:
    stores = {Persistence.DURABLE: store, Persistence.CLIENT: store, Persistence.NONE: store}
    async with SessionManager(stores, ManagerConfig(sweep_interval=None)) as manager:
        app = create_app(Config(server=ServerConfig(channel_redis_url=channel_url)), manager)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as rest:
                found = Instance(app, manager, rest)
                if up:
                    await until(lambda: found.fanout.up, "the channel is up")
                yield found


@asynccontextmanager
async def two_instances(channel_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    async with (
        open_store("memory://") as store,
        instance(store, channel_url) as a,
        instance(store, channel_url) as b,
    ):
        yield a, b


@pytest.fixture
def channel_url() -> str:
    """The shared Redis, with channels of this test's own."""
    require_port(REDIS_URL, 6379)
    return with_option(REDIS_URL, "prefix", f"ckfan{secrets.token_hex(6)}")


async def send(ws: WsClient, sid: str, content: str, client_id: str) -> dict[str, Any]:
    await ws.send("message:send", sessionId=sid, content=content, clientId=client_id)
    return await ws.expect("message:ack")


async def received(ws: WsClient) -> tuple[int, str]:
    message = (await ws.expect("message:received"))["message"]
    return message["seq"], message["content"]


def test_the_prefix_option_names_the_channels() -> None:
    assert split_url("redis://h:1/2?prefix=p&ssl_cert_reqs=none") == (
        "redis://h:1/2?ssl_cert_reqs=none",
        "p",
    )
    assert split_url("redis://h:1/0") == ("redis://h:1/0", "chatkeep")


async def test_messages_and_deletions_cross_instances_once(channel_url: str) -> None:
    async with two_instances(channel_url) as (a, b):
        sid = (await new_session(a.rest))["id"]
        async with WsClient(a.app) as on_a, WsClient(b.app) as on_b, WsClient(b.app) as on_b2:
            await on_a.join(sid)
            await on_b.join(sid)
            await on_b2.join(sid)
            assert (await send(on_a, sid, "from a", "a-1"))["seq"] == 1
            assert await received(on_b) == (1, "from a")
            assert await received(on_b2) == (1, "from a")
            assert (await send(on_b, sid, "from b", "b-1"))["seq"] == 2
            assert await received(on_a) == (2, "from b")
            assert await received(on_b2) == (2, "from b")
            body = {"role": "assistant", "content": "rest on b"}
            ok(await b.rest.post(f"/api/sessions/{sid}/messages", json=body), 201)
            for ws in (on_a, on_b, on_b2):
                assert await received(ws) == (3, "rest on b")
            ok(await a.rest.delete(f"/api/sessions/{sid}"))
            for ws in (on_a, on_b, on_b2):
                assert (await ws.expect("session:deleted"))["sessionId"] == sid
                await ws.nothing_pending()
        assert a.fanout.state.received >= 1
        assert b.fanout.state.received >= 2


async def test_lobby_frames_cross_instances(channel_url: str) -> None:
    async with two_instances(channel_url) as (a, b), WsClient(b.app) as watcher:
        await watcher.send("sessions:watch")
        await watcher.nothing_pending()
        made = await new_session(a.rest, ttl=60)
        assert (await watcher.expect("session:created"))["session"] == made
        ok(await a.rest.delete(f"/api/sessions/{made['id']}"))
        assert (await watcher.expect("session:deleted"))["sessionId"] == made["id"]
        await watcher.nothing_pending()


async def test_a_channel_outage_is_survived(redis_server: RedisServer) -> None:
    url = with_option(redis_server.url, "prefix", "outage")
    async with two_instances(url) as (a, b):
        sid = (await new_session(a.rest))["id"]
        async with WsClient(a.app) as on_a, WsClient(a.app) as on_a2, WsClient(b.app) as on_b:
            for ws in (on_a, on_a2, on_b):
                await ws.join(sid)
            await send(on_a, sid, "before", "m-1")
            assert await received(on_b) == (1, "before")
            assert await received(on_a2) == (1, "before")

            redis_server.stop()
            await until(lambda: not a.fanout.up and not b.fanout.up, "the channel is down")
            ready = ok(await a.rest.get("/readyz"))
            assert ready["status"] == "ready"
            assert ready["channel"]["up"] is False
            assert ready["channel"]["lastError"]
            assert "chatkeep_channel_up 0.0" in (await a.rest.get("/metrics")).text
            await send(on_a, sid, "during", "m-2")
            assert await received(on_a2) == (2, "during")

            redis_server.start()
            await until(lambda: a.fanout.up and b.fanout.up, "the channel is back")
            assert await received(on_b) == (2, "during")
            await send(on_b, sid, "after", "m-3")
            assert await received(on_a) == (3, "after")
            assert await received(on_a2) == (3, "after")
            for ws in (on_a, on_a2, on_b):
                await ws.nothing_pending()
        ready = ok(await b.rest.get("/readyz"))
        assert ready["channel"]["up"] is True
        assert ready["channel"]["connects"] == 2
        assert "chatkeep_channel_up 1.0" in (await b.rest.get("/metrics")).text


async def test_messages_told_out_of_order_reach_a_member_once_each(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager
) -> None:
    """Two instances may publish in another order than they stored: a member still gets
    each message once, the late one too."""
    sid = (await new_session(rest))["id"]
    hub = Rooms.of(app.state, manager)
    async with WsClient(app) as ws:
        await ws.join(sid)
        await send(ws, sid, "own", "own-1")

        def told(*seqs: int) -> None:
            frames = [(seq, json.dumps({"type": "message:received", "n": seq})) for seq in seqs]
            hub.remote_messages(sid, frames)

        told(3, 1, 2, 3, 1)
        assert [(await ws.expect("message:received"))["n"] for _ in range(2)] == [3, 2]
        told(4, 3, 2)
        assert (await ws.expect("message:received"))["n"] == 4
        await ws.nothing_pending()


async def test_an_unreachable_channel_leaves_the_instance_serving(free_tcp_port: int) -> None:
    url = f"redis://127.0.0.1:{free_tcp_port}/0"
    async with open_store("memory://") as store, instance(store, url, up=False) as alone:
        await until(lambda: alone.fanout.state.last_error is not None, "a failed attempt")
        ready = ok(await alone.rest.get("/readyz"))
        assert (ready["status"], ready["channel"]["up"]) == ("ready", False)
        sid = (await new_session(alone.rest))["id"]
        async with WsClient(alone.app) as one, WsClient(alone.app) as two:
            await one.join(sid)
            await two.join(sid)
            await send(one, sid, "still here", "s-1")
            assert await received(two) == (1, "still here")
        assert alone.fanout.state.connects == 0


async def test_malformed_events_on_the_channel_are_ignored(channel_url: str) -> None:
    url, prefix = split_url(channel_url)
    async with two_instances(channel_url) as (a, b), WsClient(b.app) as watcher:
        await watcher.send("sessions:watch")
        await watcher.nothing_pending()
        sid = (await new_session(a.rest))["id"]
        await watcher.expect("session:created")
        await watcher.join(sid)
        publisher = aioredis.Redis.from_url(url)
        try:
            for channel, payload in (
                (f"{prefix}:lobby", "not json"),
                (f"{prefix}:lobby", json.dumps({"from": "x", "kind": "session:gone"})),
                (f"{prefix}:lobby", "3"),
                (f"{prefix}:lobby", json.dumps({"from": "x", "kind": "session:deleted"})),
                (f"{prefix}:session:{sid}", json.dumps({"from": "x", "items": 3})),
                (f"{prefix}:session:{sid}", json.dumps({"from": "x", "items": [["1", "f"]]})),
                (f"{prefix}:session:{sid}", json.dumps({"from": "x", "items": [[True, "f"]]})),
                (f"{prefix}:session:{sid}", "[]"),
            ):
                await publisher.publish(channel, payload)
        finally:
            await publisher.aclose()
        ok(
            await a.rest.post(
                f"/api/sessions/{sid}/messages", json={"role": "user", "content": "ok"}
            ),
            201,
        )
        assert await received(watcher) == (1, "ok")
        ok(await a.rest.delete(f"/api/sessions/{sid}"))
        assert (await watcher.expect("session:deleted"))["sessionId"] == sid
        await watcher.nothing_pending()
        assert b.fanout.up
        assert b.fanout.state.received == 3  # created, the message, deleted
