"""No message outlives its session in the PostgreSQL store. ``messages.session_id`` has no
foreign key (schema version 3): every path that deletes a session deletes its messages,
and a message is inserted only by a statement that writes its session row. Counts rows
of the tables directly; two stores on one schema, each with its own pool, stand for two
processes. Runs against the real server at ``$CHATKEEP_TEST_POSTGRES_URL``; skips
without it (fails under CI)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any, TypeVar, cast

import pytest
from listing_reference import NOW, make_session
from test_postgres_backend import schemas, sql, with_options  # noqa: F401

import chatkeep
from chatkeep import (
    Message,
    NewMessage,
    Role,
    SessionNotFoundError,
    Store,
    TransactionConflictError,
)
from chatkeep.core.clock import FakeClock
from chatkeep.stores import calls, ops
from chatkeep.stores.postgres import PostgresBackend
from chatkeep.stores.sql import postgres as migrations
from chatkeep.stores.sql.postgres import latest, quote_ident

T = TypeVar("T")
WAIT = 10.0
"""Seconds a statement may take to start waiting for a row lock."""


async def message_counts(schema: str) -> dict[str, int]:
    """Rows of the messages table by session id."""
    rows = await sql(f"SELECT session_id, count(*) FROM {quote_ident(schema)}.messages GROUP BY 1")
    return {row[0]: row[1] for row in rows}


async def orphans(schema: str) -> int:
    """Messages whose session row is gone."""
    s = quote_ident(schema)
    rows = await sql(
        f"SELECT count(*) FROM {s}.messages AS m "
        f"WHERE NOT EXISTS (SELECT FROM {s}.sessions AS s WHERE s.id = m.session_id)"
    )
    return int(rows[0][0])


async def append(store: Store, session_id: str, text: str) -> None:
    await store.append_messages(session_id, NewMessage("user", text))


async def with_messages(store: Store, count: int, **fields: Any) -> str:
    s = await store.create_session(**fields)
    for i in range(count):
        await append(store, s.id, f"m{i}")
    return s.id


def opened(schema: str, clock: FakeClock, name: str = "") -> Any:
    options: dict[str, object] = {"schema": schema, "pool_min": 1, "pool_max": 1}
    if name:
        options["application_name"] = name
    return chatkeep.open_store(with_options(**options), clock=clock)


async def waiting_for_a_lock(name: str) -> None:
    """Return once a statement of the store named ``name`` waits for a lock."""
    loop = asyncio.get_running_loop()
    until = loop.time() + WAIT
    while loop.time() < until:
        rows = await sql(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND wait_event_type = 'Lock'",
            name,
        )
        if rows[0][0]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no statement of {name} waits for a lock")


async def blocked(name: str, work: Awaitable[T]) -> asyncio.Task[T]:
    """``work`` started, and waiting for a row lock held by the test."""
    task = asyncio.ensure_future(work)
    await waiting_for_a_lock(name)
    assert not task.done()
    return task


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def two(
    schemas: list[str],  # noqa: F811
    clock: FakeClock,
) -> AsyncIterator[tuple[Store, Store, str]]:
    """Two stores on one schema, one connection each; the second named ``name``."""
    name = f"ckdel{uuid.uuid4().hex[:8]}"
    async with opened(schemas[0], clock) as one, opened(schemas[0], clock, name) as other:
        yield one, other, name


# -- each way of deleting a session ----------------------------------------------------
async def test_each_way_of_deleting_a_session_deletes_its_messages(
    schemas: list[str],  # noqa: F811
    clock: FakeClock,
) -> None:
    schema = schemas[0]
    async with opened(schema, clock) as store:
        kept = await with_messages(store, 2, ttl=None)
        by_op, in_block, imported, overwritten = [
            await with_messages(store, 3, ttl=None) for _ in range(4)
        ]
        expired = await with_messages(store, 3, ttl=timedelta(hours=1))
        ids = (by_op, in_block, imported, overwritten, expired)
        assert await message_counts(schema) == {kept: 2, **dict.fromkeys(ids, 3)}

        assert await store.delete_session(by_op)  # one checked statement
        async with store.transaction() as tx:  # a transaction that locked the row
            assert await tx.delete_session(in_block)
        exported = [line async for line in store.export_sessions()]
        await append(store, imported, "after the export")
        clock.advance(timedelta(hours=2))
        assert await store.cleanup_expired_sessions() == 1  # rows not locked before
        assert await message_counts(schema) == {kept: 2, imported: 4, overwritten: 3}

        await store.clear_messages(overwritten)
        report = await store.import_sessions(exported, strategy="overwrite")
        assert report.restored == 4  # kept, expired, imported, overwritten
        assert await message_counts(schema) == {
            kept: 2, expired: 3, imported: 3, overwritten: 3,
        }  # fmt: skip
        assert [m.content for m in await store.get_messages(imported)] == ["m0", "m1", "m2"]
    assert await orphans(schema) == 0


async def test_a_checked_delete_of_a_changed_session_deletes_nothing(
    two: tuple[Store, Store, str],
    schemas: list[str],  # noqa: F811
) -> None:
    one, other, _ = two
    sid = await with_messages(one, 2)
    backend = cast(Any, one)._backend
    with pytest.raises(TransactionConflictError):
        async with backend.operation(True) as txn:
            assert await calls.run_async(txn, ops.delete(cast(Any, one)._context(), sid))
            table = f"{quote_ident(schemas[0])}.sessions"
            await sql(f"UPDATE {table} SET version = version WHERE id = $1", sid)
    assert await message_counts(schemas[0]) == {sid: 2}
    assert (await other.get_session(sid)).message_count == 2


async def test_messages_of_a_missing_session_are_never_inserted(
    schemas: list[str],  # noqa: F811
) -> None:
    """A transaction that goes on after such an error commits no message of it."""
    backend = await PostgresBackend.open(with_options(schema=schemas[0]), {"schema": schemas[0]})
    try:
        message = Message("m1", "ghost", 1, Role.USER, "x", None, NOW)
        async with backend.transaction(True) as txn:
            await txn.insert_messages("ghost", [message])
            with pytest.raises(SessionNotFoundError):  # with the update of the session
                await txn.put_session(make_session("ghost", message_count=1), new=False)
            await txn.insert_messages("ghost", [message])
            with pytest.raises(SessionNotFoundError):  # on their own, before a read
                await txn.get_session("ghost")
            await txn.put_session(make_session("real"), new=True)
            await txn.insert_messages("real", [message])
    finally:
        await backend.close()
    assert await message_counts(schemas[0]) == {"real": 1}


# -- a delete and an append at once, from two connections --------------------------
async def test_a_checked_delete_waiting_for_an_append_deletes_its_message(
    two: tuple[Store, Store, str],
    schemas: list[str],  # noqa: F811
) -> None:
    """The delete reads the row before the append commits, and waits for its lock."""
    one, other, name = two
    sid = await with_messages(one, 1)
    await other.get_session(sid)  # cached: the delete sends one checked statement
    async with one.transaction() as tx:
        await tx.append_messages(sid, NewMessage("user", "late"))
        deleting = await blocked(name, other.delete_session(sid))
    assert await deleting
    assert await message_counts(schemas[0]) == {}


async def test_a_cleanup_waiting_for_an_append_deletes_its_message(
    schemas: list[str],  # noqa: F811
) -> None:
    """The cleanup lists the session as expired (by its own clock) before the append
    commits, then locks the row."""
    early = FakeClock()
    late = FakeClock(early.now() + timedelta(hours=3))
    name = f"ckdel{uuid.uuid4().hex[:8]}"
    async with opened(schemas[0], early) as one, opened(schemas[0], late, name) as other:
        sid = await with_messages(one, 1, ttl=timedelta(hours=1))
        async with one.transaction() as tx:
            await tx.append_messages(sid, NewMessage("user", "late"))
            cleaning = await blocked(name, other.cleanup_expired_sessions())
        assert await cleaning == 1
    assert await message_counts(schemas[0]) == {}


async def test_an_append_waiting_for_a_delete_inserts_nothing(
    two: tuple[Store, Store, str],
    schemas: list[str],  # noqa: F811
) -> None:
    other, one, name = two  # the appender is the named store
    sid = await with_messages(one, 1)
    await one.get_messages(sid, last=20)  # cached: the append sends one checked statement
    async with other.transaction() as tx:
        assert await tx.delete_session(sid)
        appending = await blocked(name, append(one, sid, "late"))
    with pytest.raises(SessionNotFoundError):
        await appending
    assert await message_counts(schemas[0]) == {}


async def test_concurrent_appends_and_deletes_leave_no_orphan(
    schemas: list[str],  # noqa: F811
) -> None:
    url = with_options(schema=schemas[0], pool_max=4)
    async with chatkeep.open_store(url) as one, chatkeep.open_store(url) as other:
        stores = (one, other)
        ids = [f"s{i}" for i in range(8)]
        for sid in ids:
            await one.create_session(id=sid)
        rng = random.Random(7)

        async def appender(k: int) -> None:
            for i in range(6):
                try:
                    await append(stores[k % 2], ids[(k + i) % len(ids)], f"{k}-{i}")
                except SessionNotFoundError:
                    continue

        async def deleter(k: int) -> None:
            for sid in rng.sample(ids, len(ids)):
                await asyncio.sleep(rng.random() / 200)
                await stores[k % 2].delete_session(sid)

        await asyncio.gather(*map(appender, range(16)), deleter(0), deleter(1))
    assert await message_counts(schemas[0]) == {}
    assert await orphans(schemas[0]) == 0


# -- the migration --------------------------------------------------------------------
async def test_a_version_2_schema_is_upgraded_with_its_data(
    schemas: list[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = schemas[1]
    shipped = migrations.migrations()
    assert [m.version for m in shipped] == [1, 2, 3]
    monkeypatch.setattr(migrations, "migrations", lambda: shipped[:2])
    clock = FakeClock()
    async with opened(schema, clock) as store:
        ids = [await with_messages(store, n, owner="o") for n in (0, 1, 3)]
        before = [(await store.get_session(i), await store.get_messages(i)) for i in ids]
    assert await foreign_keys(schema) == 1
    monkeypatch.undo()
    assert latest() == 3
    async with opened(schema, clock) as store:
        assert [(await store.get_session(i), await store.get_messages(i)) for i in ids] == before
        health = await store.health()
        assert (health.issues, health.details["schema_version"]) == ([], 3)
        await append(store, ids[0], "new")
        assert await store.delete_session(ids[2])
    versions = await sql(f"SELECT version FROM {quote_ident(schema)}.schema_version ORDER BY 1")
    assert [row[0] for row in versions] == [1, 2, 3]
    assert await foreign_keys(schema) == 0
    assert await message_counts(schema) == {ids[0]: 1, ids[1]: 1}


async def foreign_keys(schema: str) -> int:
    rows = await sql(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = $1::regclass",
        f"{quote_ident(schema)}.messages",
    )
    return int(rows[0][0])
