"""The PostgreSQL store's single operations without a transaction: one statement that
checks the session's row version, a cache of session rows (and their newest messages)
that is checked before it is believed, and the run again in a transaction when another
connection changed the session in between. Two stores on one schema, each with its own
pool, stand for two processes. Runs against the real server at
``$CHATKEEP_TEST_POSTGRES_URL``; skips without it (fails under CI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from listing_reference import NOW, make_session
from test_postgres_backend import schemas, sql, with_options  # noqa: F401

import chatkeep
from chatkeep import (
    NewMessage,
    Session,
    SessionNotFoundError,
    Store,
    TransactionConflictError,
)
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import Message
from chatkeep.stores import calls, ops
from chatkeep.stores.postgres_optimistic import OptimisticTxn
from chatkeep.stores.record_cache import Known, SessionCache
from chatkeep.stores.sql.postgres import quote_ident

_TYPE_LOOKUP = ("SELECT current_setting('jit')", "WITH RECURSIVE", "SELECT set_config('jit',")
"""What asyncpg sends, once per connection, to learn a type it has no codec for (such as
``bigint[]``): not the store's statements."""


class Statements:
    """The statements a store sends, by their first two words."""

    def __init__(self, store: Store) -> None:
        self.sent: list[str] = []
        pool = cast(Any, store)._backend._pool
        for holder in pool._holders:
            if holder._con is not None:
                holder._con.add_query_logger(self._log)

    def _log(self, record: Any) -> None:
        start = " ".join(record.query.split()[:2])
        if not start.startswith(_TYPE_LOOKUP):
            self.sent.append(start)

    async def take(self) -> list[str]:
        """The statements sent since the last call. asyncpg calls the logger soon after
        each statement (``loop.call_soon``): one turn of the event loop runs them."""
        await asyncio.sleep(0)
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def two(schemas: list[str], clock: FakeClock) -> AsyncIterator[tuple[Store, Store]]:  # noqa: F811
    """Two stores on one schema, one connection each."""
    url = with_options(schema=schemas[0], pool_min=1, pool_max=1)
    async with (
        chatkeep.open_store(url, clock=clock) as one,
        chatkeep.open_store(url, clock=clock) as other,
    ):
        yield one, other


def says(messages: list[Message]) -> list[tuple[int, object]]:
    return [(m.seq, m.content) for m in messages]


async def append(store: Store, session_id: str, text: str) -> Message:
    return (await store.append_messages(session_id, NewMessage("user", text)))[0]


async def test_a_known_session_is_appended_to_and_read_in_one_statement(
    two: tuple[Store, Store],
) -> None:
    one, _ = two
    s = await one.create_session()
    await append(one, s.id, "first")
    sent = Statements(one)
    await append(one, s.id, "second")
    assert await sent.take() == ["WITH changed"]
    assert says(await one.get_messages(s.id, last=20)) == [(1, "first"), (2, "second")]
    assert await sent.take() == ["SELECT xmin"]
    assert (await one.get_session(s.id)).message_count == 2
    assert await sent.take() == ["SELECT xmin"]


async def test_writes_of_another_connection_are_seen_and_kept(
    two: tuple[Store, Store],
) -> None:
    one, other = two
    s = await one.create_session()
    await append(one, s.id, "a1")
    assert says(await one.get_messages(s.id, last=20)) == [(1, "a1")]
    await append(other, s.id, "b1")
    assert says(await one.get_messages(s.id, last=20)) == [(1, "a1"), (2, "b1")]
    await append(other, s.id, "b2")
    assert (await append(one, s.id, "a2")).seq == 4
    history = await other.get_messages(s.id)
    assert says(history) == [(1, "a1"), (2, "b1"), (3, "b2"), (4, "a2")]
    after = await other.get_session(s.id)
    assert (after.message_count, after.last_seq, after.version) == (4, 4, 5)


async def test_a_change_between_the_read_and_the_write_runs_the_append_again(
    two: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other connection appends after this append has read its session (from the
    cache) and before it writes: the checked statement changes nothing, and the append
    runs again in a transaction that locks the row."""
    one, other = two
    s = await one.create_session()
    await append(one, s.id, "a0")
    original = OptimisticTxn.get_session
    interrupted: list[int] = []

    async def get_then_let_the_other_write(txn: OptimisticTxn, session_id: str) -> Any:
        found = await original(txn, session_id)
        if not interrupted:
            interrupted.append(cast(Session, found).last_seq)
            await append(other, session_id, "b1")
        return found

    monkeypatch.setattr(OptimisticTxn, "get_session", get_then_let_the_other_write)
    sent = Statements(one)
    written = await append(one, s.id, "a1")
    assert interrupted == [1]
    assert written.seq == 3
    assert await sent.take() == [
        "WITH changed", "BEGIN;", "SELECT s.id,", "WITH changed", "COMMIT;"
    ]  # fmt: skip
    assert says(await other.get_messages(s.id)) == [(1, "a0"), (2, "b1"), (3, "a1")]
    assert (await other.get_session(s.id)).message_count == 3


async def test_a_checked_write_that_finds_the_row_changed_changes_nothing(
    two: tuple[Store, Store],
    schemas: list[str],  # noqa: F811
) -> None:
    one, other = two
    s = await one.create_session()
    await append(one, s.id, "a0")
    backend = cast(Any, one)._backend
    ctx = cast(Any, one)._context()
    with pytest.raises(TransactionConflictError):
        async with backend.operation(True) as txn:
            await calls.run_async(txn, ops.append(ctx, s.id, [NewMessage("user", "lost")]))
            table = f"{quote_ident(schemas[0])}.sessions"
            await sql(f"UPDATE {table} SET version = version WHERE id = $1", s.id)
    assert says(await other.get_messages(s.id)) == [(1, "a0")]
    assert (await other.get_session(s.id)).message_count == 1


async def test_a_session_deleted_by_another_connection_is_gone(
    two: tuple[Store, Store],
) -> None:
    one, other = two
    s = await one.create_session()
    await append(one, s.id, "a0")
    assert await other.delete_session(s.id)
    with pytest.raises(SessionNotFoundError):
        await one.get_session(s.id)
    with pytest.raises(SessionNotFoundError):
        await one.get_messages(s.id, last=20)
    with pytest.raises(SessionNotFoundError):
        await append(one, s.id, "lost")
    assert not await one.delete_session(s.id)


async def test_a_session_made_again_under_its_id_is_the_new_one(
    two: tuple[Store, Store],
) -> None:
    one, other = two
    await one.create_session(id="again")
    await append(one, "again", "old")
    await append(one, "again", "old too")
    await other.delete_session("again")
    await other.create_session(id="again")
    assert await one.get_messages("again", last=20) == []
    assert (await append(one, "again", "new")).seq == 1
    assert says(await other.get_messages("again")) == [(1, "new")]


async def test_an_expiry_moved_by_another_connection_is_honoured(
    two: tuple[Store, Store], clock: FakeClock
) -> None:
    """The cached session has expired by the clock; the row has not, so it is live."""
    one, other = two
    s = await one.create_session(ttl=timedelta(hours=1))
    await append(one, s.id, "a0")
    await other.set_expiration(s.id, None)
    clock.advance(timedelta(hours=2))
    assert says(await one.get_messages(s.id, last=20)) == [(1, "a0")]
    assert (await append(one, s.id, "a1")).seq == 2
    assert (await one.get_session(s.id)).expires_at == clock.now() + timedelta(hours=1)


async def test_without_the_cache_an_append_is_still_without_a_transaction(
    schemas: list[str],  # noqa: F811
) -> None:
    url = with_options(schema=schemas[1], pool_max=1, cache_sessions=0)
    async with chatkeep.open_store(url) as store:
        s = await store.create_session()
        await append(store, s.id, "a0")  # the driver learns the types of the statements
        sent = Statements(store)
        await append(store, s.id, "a1")
        assert await sent.take() == ["SELECT s.id,", "WITH changed"]
        assert says(await store.get_messages(s.id, last=20)) == [(1, "a0"), (2, "a1")]


async def test_the_window_and_other_writes_keep_the_cached_messages_exact(
    two: tuple[Store, Store],
) -> None:
    one, other = two
    s = await one.create_session(max_messages=3)
    for i in range(5):
        await append(one, s.id, f"m{i}")
    assert says(await one.get_messages(s.id, last=20)) == [(3, "m2"), (4, "m3"), (5, "m4")]
    assert says(await one.get_messages(s.id, last=2)) == [(4, "m3"), (5, "m4")]
    popped = await one.pop_message(s.id)
    assert popped is not None
    assert popped.seq == 5
    assert says(await one.get_messages(s.id, last=20)) == [(3, "m2"), (4, "m3")]
    await one.update_session(s.id, {"max_messages": 1})
    assert says(await one.get_messages(s.id, last=20)) == [(4, "m3")]
    assert await one.clear_messages(s.id) == 1
    assert await one.get_messages(s.id, last=20) == []
    assert says(await one.append_messages(s.id, [NewMessage("user", "x")] * 3)) == [
        (6, "x"),
        (7, "x"),
        (8, "x"),
    ]
    assert says(await one.get_messages(s.id, last=20)) == [(8, "x")]
    assert says(await other.get_messages(s.id)) == [(8, "x")]


# -- the cache --------------------------------------------------------------------------
def known(session_id: str, count: int, newest: tuple[Message, ...] | None = None) -> Known:
    return Known(1, (), make_session(session_id, message_count=count), newest)


def test_the_cache_keeps_the_most_recently_stored() -> None:
    cache = SessionCache(2, 10)
    for name in ("a", "b", "a", "c"):
        cache.put(known(name, 0))
    assert (cache.get("a"), cache.get("b")) == (cache.get("a"), None)
    assert cache.get("c") is not None
    assert len(cache) == 2
    cache.drop("a")
    assert cache.get("a") is None
    assert len(cache) == 1


def test_a_cache_of_size_zero_keeps_nothing_and_a_negative_size_is_refused() -> None:
    cache = SessionCache(0, 10)
    cache.put(known("a", 0))
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="0 or more"):
        SessionCache(-1, 10)


def test_an_entry_answers_only_for_the_messages_it_holds() -> None:
    three = tuple(Message(f"m{i}", "s", i, chatkeep.Role.USER, "x", None, NOW) for i in (1, 2, 3))
    whole = known("s", 3, three)
    assert whole.last(None) == list(three)
    assert whole.last(20) == list(three)
    assert whole.last(2) == list(three[1:])
    part = known("s", 10, three)
    assert part.last(2) == list(three[1:])
    assert part.last(3) == list(three)
    assert part.last(4) is None
    assert part.last(None) is None
    assert known("s", 3).last(1) is None
    assert whole.with_newest(three, 2).newest == three[1:]
    assert known("s", 1).with_newest(three, 10).newest == three[2:]
