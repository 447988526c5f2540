"""The PostgreSQL store's connections: after an operation that ends cleanly, up to
``pool_min`` of them stay with the store for the next one; any other ends in the pool,
which decides what becomes of it. Runs against the real server at
``$CHATKEEP_TEST_POSTGRES_URL``; skips without it (fails under CI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import pytest
from test_postgres_backend import schemas, sql, with_options  # noqa: F401

import chatkeep
from chatkeep import NewMessage, SessionNotFoundError, Store
from chatkeep.stores.postgres import PostgresBackend

WAIT = 10.0
"""Seconds within which each step ends (a connection the pool never gets back would
make it wait forever)."""


def backend(store: Store) -> PostgresBackend:
    return cast(PostgresBackend, cast(Any, store)._backend)


def held(store: Store) -> list[Any]:
    return list(backend(store)._connections._idle)


@pytest.fixture
async def store(schemas: list[str]) -> AsyncIterator[Store]:  # noqa: F811
    """A store whose pool has a single connection."""
    url = with_options(schema=schemas[0], pool_min=1, pool_max=1)
    async with chatkeep.open_store(url) as opened:
        yield opened


async def test_the_connection_stays_with_the_store_between_operations(store: Store) -> None:
    s = await store.create_session()
    first = held(store)
    assert len(first) == 1
    await store.append_messages(s.id, NewMessage("user", "hello"))
    assert held(store) == first
    assert [m.content for m in await store.get_messages(s.id)] == ["hello"]
    assert held(store) == first
    async with store.transaction() as tx:
        assert held(store) == []
        await tx.append_messages(s.id, NewMessage("user", "again"))
    assert held(store) == first


async def test_work_that_takes_the_pool_directly_finds_the_connection(store: Store) -> None:
    """With one connection in the pool, held by the store, maintenance still gets it."""
    await store.create_session()
    assert len(held(store)) == 1
    report = await asyncio.wait_for(store.optimize(), WAIT)
    assert report.operations
    assert len(held(store)) == 1


async def test_after_an_error_the_connection_goes_back_to_the_pool(store: Store) -> None:
    await store.create_session()
    with pytest.raises(SessionNotFoundError):
        await store.get_messages("no-such-session")
    assert held(store) == []
    pool = backend(store)._pool
    assert pool.get_idle_size() == 1
    await asyncio.wait_for(store.create_session(), WAIT)
    assert len(held(store)) == 1


async def test_a_held_connection_that_was_closed_is_replaced(store: Store) -> None:
    s = await store.create_session()
    (conn,) = held(store)
    conn.terminate()  # as when the server ends it: the pool takes its holder back
    await asyncio.wait_for(store.append_messages(s.id, NewMessage("user", "after")), WAIT)
    (now,) = held(store)
    assert not now.is_closed()
    assert [m.content for m in await store.get_messages(s.id)] == ["after"]


async def test_closing_gives_every_connection_back(schemas: list[str]) -> None:  # noqa: F811
    url = with_options(schema=schemas[0], pool_min=1, pool_max=2)
    opened = await chatkeep.open_store(url)
    await opened.create_session()
    assert len(held(opened)) == 1
    pool = backend(opened)._pool
    await asyncio.wait_for(opened.close(), WAIT)
    assert held(opened) == []
    assert pool._closed


async def test_with_pool_min_0_no_connection_is_held(schemas: list[str]) -> None:  # noqa: F811
    url = with_options(schema=schemas[0], pool_min=0, pool_max=1)
    async with chatkeep.open_store(url) as opened:
        s = await opened.create_session()
        await opened.append_messages(s.id, NewMessage("user", "hello"))
        assert held(opened) == []
        assert backend(opened)._pool.get_idle_size() == 1


async def test_concurrent_operations_share_the_pool_and_keep_pool_min(
    schemas: list[str],  # noqa: F811
) -> None:
    url = with_options(schema=schemas[0], pool_min=1, pool_max=3)
    async with chatkeep.open_store(url) as opened:
        sessions = [await opened.create_session() for _ in range(6)]
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    opened.append_messages(s.id, NewMessage("user", str(n)))
                    for n in range(5)
                    for s in sessions
                )
            ),
            WAIT,
        )
        assert len(held(opened)) == 1
        for s in sessions:
            # Appends to one session that run at once may commit in any order.
            stored = await opened.get_messages(s.id)
            assert sorted(str(m.content) for m in stored) == [str(n) for n in range(5)]
            assert [m.seq for m in stored] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("size", "tasks"), [(1, 4), (3, 12)])
async def test_callers_beyond_the_pool_get_a_connection_when_all_may_be_held(
    schemas: list[str],  # noqa: F811
    size: int,
    tasks: int,
) -> None:
    """With pool_min = pool_max every connection may stay with the store: one that a
    caller gives back while another waits for the pool must go to the pool instead."""
    url = with_options(schema=schemas[0], pool_min=size, pool_max=size)
    async with chatkeep.open_store(url) as opened:
        sessions = [await opened.create_session() for _ in range(tasks)]

        async def chat(session_id: str) -> None:
            for n in range(3):
                await opened.append_messages(session_id, NewMessage("user", str(n)))

        await asyncio.wait_for(asyncio.gather(*(chat(s.id) for s in sessions)), WAIT)
        for s in sessions:
            assert [m.content for m in await opened.get_messages(s.id)] == ["0", "1", "2"]
        assert len(held(opened)) <= size
        assert backend(opened)._connections._waiting == 0


async def test_a_held_connection_the_server_ended_is_replaced(store: Store) -> None:
    s = await store.create_session()
    (conn,) = held(store)
    await sql("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    await asyncio.wait_for(ended(conn), WAIT)
    await asyncio.wait_for(store.append_messages(s.id, NewMessage("user", "after")), WAIT)
    (now,) = held(store)
    assert now is not conn
    assert [m.content for m in await store.get_messages(s.id)] == ["after"]


async def ended(conn: Any) -> None:
    """Once the driver has seen the connection end (it then leaves the proxy)."""
    while True:
        try:
            if conn.is_closed():
                return
        except asyncpg.InterfaceError:
            return
        await asyncio.sleep(0.01)
