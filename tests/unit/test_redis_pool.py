"""The Redis backend's kept connections: one the server closed is not handed out again,
and a task waiting for the pool gets the next connection given back.

Runs against the real Redis at ``$CHATKEEP_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); skips when it is unreachable, fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError

from chatkeep.stores.redis_pool import KEPT, ConnectionCache

URL = os.environ.get("CHATKEEP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def conns() -> AsyncIterator[ConnectionCache]:
    pool = BlockingConnectionPool.from_url(URL, max_connections=2, timeout=5, protocol=2)
    cache = ConnectionCache(pool, timeout=0.5)
    try:
        conn = await cache.take()
    except (OSError, RedisError) as exc:
        await cache.close()
        if os.environ.get("CI") == "true":
            pytest.fail(f"redis server {URL} is unreachable ({exc})")
        pytest.skip(f"redis server {URL} is unreachable ({exc})")
    await cache.give_back(conn)
    yield cache
    await cache.close()


async def client_id(conn: object) -> int:
    await conn.send_command("CLIENT", "ID")  # type: ignore[attr-defined]
    return int(await conn.read_response())  # type: ignore[attr-defined]


async def test_a_connection_given_back_is_handed_out_again(conns: ConnectionCache) -> None:
    first = await conns.take()
    number = await client_id(first)
    await conns.give_back(first)
    again = await conns.take()
    assert again is first
    assert await client_id(again) == number
    await conns.give_back(again)


async def test_a_connection_the_server_closed_is_not_handed_out(conns: ConnectionCache) -> None:
    conn = await conns.take()
    number = await client_id(conn)
    await conns.give_back(conn)
    other = await conns.take()
    assert other is conn
    killer = await conns.take()  # the pool's second connection
    await killer.send_command("CLIENT", "KILL", "ID", str(number))
    assert int(await killer.read_response()) == 1
    await conns.give_back(killer)
    await conns.give_back(other)
    await asyncio.sleep(0.05)  # the server's close reaches the client
    taken = [await conns.take(), await conns.take()]
    numbers = [await client_id(c) for c in taken]
    assert number not in numbers, "the killed connection was reopened, not reused"
    for c in taken:
        await conns.give_back(c)


async def test_a_waiting_task_gets_the_connection_given_back(conns: ConnectionCache) -> None:
    held = [await conns.take(), await conns.take()]  # the whole pool
    waiter = asyncio.create_task(conns.take())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await conns.give_back(held.pop())
    got = await asyncio.wait_for(waiter, 2)
    assert await client_id(got) > 0
    await conns.give_back(got)
    await conns.give_back(held.pop())


async def test_taking_times_out_when_every_connection_is_in_use(conns: ConnectionCache) -> None:
    held = [await conns.take(), await conns.take()]
    with pytest.raises(TimeoutError):
        await conns.take()
    for conn in held:
        await conns.give_back(conn)


async def test_at_most_kept_connections_stay_out_of_the_pool() -> None:
    pool = BlockingConnectionPool.from_url(URL, max_connections=KEPT + 4, timeout=5, protocol=2)
    conns = ConnectionCache(pool, timeout=2)
    try:
        try:
            taken = [await conns.take() for _ in range(KEPT + 2)]
        except (OSError, RedisError) as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"redis server {URL} is unreachable ({exc})")
            pytest.skip(f"redis server {URL} is unreachable ({exc})")
        for conn in taken:
            await conns.give_back(conn)
        assert len(conns._idle) == KEPT
    finally:
        await conns.close()
