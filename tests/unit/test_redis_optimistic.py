"""A single operation of the Redis store without a transaction: the session from the
store's cache of records, the writes in one checked script, and what happens when the
check fails (another store wrote), when the server has lost the script, and when the
data is bad.

Runs against the real Redis at ``$CHATKEEP_TEST_REDIS_URL``; skips when it is
unreachable, fails under ``CI=true`` (the ``raw`` and ``prefix`` fixtures).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
from test_redis_backend import prefix, raw, url_of

import chatkeep
from chatkeep import CorruptDataError, FakeClock, NewMessage, Store
from chatkeep.stores import redis_script
from chatkeep.stores.outbox import Change
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_link import Command, Link
from chatkeep.stores.tiered import TieredStore

__all__ = ["prefix", "raw"]


@pytest.fixture
async def stores(prefix: str, fake_clock: FakeClock) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one prefix, each with its own connections and cache."""
    async with (
        chatkeep.open_store(url_of(prefix), clock=fake_clock) as one,
        chatkeep.open_store(url_of(prefix), clock=fake_clock) as two,
    ):
        yield one, two


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each run of the script answered (True: it wrote), in order."""
    answers: list[bool] = []
    real = redis_script.apply

    async def noted(*args: Any, **kwargs: Any) -> bool:
        answer = await real(*args, **kwargs)
        answers.append(answer)
        return answer

    monkeypatch.setattr(redis_script, "apply", noted)
    return answers


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """The command names of each round trip to Redis, in order."""
    sent: list[list[bytes]] = []
    real = Link.replies

    async def noted(self: Link, *commands: Command) -> list[Any]:
        sent.append([str(c[0]).encode() for c in commands])
        return await real(self, *commands)

    monkeypatch.setattr(Link, "replies", noted)
    return sent


def texts(messages: Sequence[chatkeep.Message]) -> list[object]:
    return [m.content for m in messages]


def one(text: str) -> list[NewMessage]:
    return [NewMessage(role="user", content=text)]


async def test_an_append_and_a_read_are_one_round_trip_each(
    stores: tuple[Store, Store], trips: list[list[bytes]]
) -> None:
    store, _ = stores
    s = await store.create_session()
    await store.append_messages(s.id, one("first"))
    trips.clear()
    await store.append_messages(s.id, one("second"))
    assert trips == [[b"EVALSHA"]]
    trips.clear()
    assert texts(await store.get_messages(s.id, last=20)) == ["first", "second"]
    assert trips == [[b"GET", b"ZREVRANGEBYSCORE"]]


async def test_a_write_by_another_store_makes_the_next_one_run_again_on_it(
    stores: tuple[Store, Store], scripts: list[bool]
) -> None:
    mine, other = stores
    s = await mine.create_session(id="shared")
    await mine.append_messages(s.id, one("a1"))
    assert texts(await other.append_messages(s.id, one("b1"))) == ["b1"]
    scripts.clear()
    appended = await mine.append_messages(s.id, one("a2"))
    assert scripts == [False]  # the cached record was out of date: nothing written
    assert [m.seq for m in appended] == [3]
    for store in stores:
        assert texts(await store.get_messages(s.id)) == ["a1", "b1", "a2"]
        assert (await store.get_session(s.id)).version == 4
    scripts.clear()
    await mine.append_messages(s.id, one("a3"))  # the retry refreshed the cache
    assert scripts == [True]
    assert [m.seq for m in await other.get_messages(s.id)] == [1, 2, 3, 4]


async def test_a_read_from_the_cache_sees_another_store_s_writes(
    stores: tuple[Store, Store],
) -> None:
    mine, other = stores
    s = await mine.create_session(id="seen")
    await mine.append_messages(s.id, one("a1"))
    assert texts(await mine.get_messages(s.id, last=20)) == ["a1"]
    await other.append_messages(s.id, one("b1"))
    await other.update_session(s.id, {"tags": ["renamed"]})
    assert texts(await mine.get_messages(s.id, last=20)) == ["a1", "b1"]
    assert (await mine.get_session(s.id)).tags == frozenset({"renamed"})
    assert await other.delete_session(s.id)
    with pytest.raises(chatkeep.SessionNotFoundError):
        await mine.get_messages(s.id, last=20)
    with pytest.raises(chatkeep.SessionNotFoundError):
        await mine.append_messages(s.id, one("gone"))


async def test_a_script_missing_from_the_server_is_sent_again(
    stores: tuple[Store, Store], raw: aioredis.Redis, scripts: list[bool]
) -> None:
    store, _ = stores
    s = await store.create_session()
    await store.append_messages(s.id, one("before"))
    await raw.script_flush()
    assert await raw.script_exists(redis_script.SHA) == [False]
    await store.append_messages(s.id, one("after"))
    assert scripts[-1] is True  # written by the script, not by a transaction
    assert await raw.script_exists(redis_script.SHA) == [True]
    assert texts(await store.get_messages(s.id)) == ["before", "after"]


async def test_a_held_lock_sends_the_write_to_a_transaction(
    stores: tuple[Store, Store], raw: aioredis.Redis, prefix: str, scripts: list[bool]
) -> None:
    store, _ = stores
    s = await store.create_session()
    scripts.clear()
    await raw.set(Keys(prefix).lock(s.id), "a transaction", px=200)
    assert [m.seq for m in await store.append_messages(s.id, one("x"))] == [1]
    assert scripts == [False]
    assert await raw.exists(Keys(prefix).lock(s.id)) == 0


async def test_a_bad_record_under_a_cached_session_is_an_error_for_it_only(
    stores: tuple[Store, Store], raw: aioredis.Redis, prefix: str
) -> None:
    store, _ = stores
    keys = Keys(prefix)
    for sid in ("bad", "good"):
        await store.create_session(id=sid)
        await store.append_messages(sid, one("fine"))
    await raw.set(keys.session("bad"), b"{not json")
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.get_messages("bad", last=20)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.append_messages("bad", one("lost"))
    assert await raw.zcard(keys.messages("bad")) == 1
    assert await raw.get(keys.session("bad")) == b"{not json"
    assert texts(await store.append_messages("good", one("more"))) == ["more"]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda k: (k.messages("bad"), b"a string"), id="messages"),
        pytest.param(lambda k: (k.ids("bad"), b"a string"), id="id-index"),
    ],
)
async def test_a_key_of_the_wrong_type_stops_the_script_before_the_record(
    stores: tuple[Store, Store], raw: aioredis.Redis, prefix: str, damage: Any
) -> None:
    store, _ = stores
    keys = Keys(prefix)
    s = await store.create_session(id="bad")
    await store.append_messages(s.id, one("fine"))
    record = await raw.get(keys.session("bad"))
    key, value = damage(keys)
    await raw.delete(key)
    await raw.set(key, value)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.append_messages(s.id, one("lost"))
    assert await raw.get(keys.session("bad")) == record
    await store.create_session(id="good")
    assert texts(await store.append_messages("good", one("x"))) == ["x"]


async def test_damaged_messages_under_a_cached_session_are_found(
    stores: tuple[Store, Store], raw: aioredis.Redis, prefix: str
) -> None:
    store, _ = stores
    s = await store.create_session(id="bad")
    await store.append_messages(s.id, one("fine"))
    assert texts(await store.get_messages(s.id, last=20)) == ["fine"]
    await raw.zadd(Keys(prefix).messages("bad"), {b'{"id": 1}': 9})
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.get_messages(s.id, last=20)


async def test_with_write_behind_the_script_also_fills_the_outbox(
    prefix: str, raw: aioredis.Redis, tmp_path: Path, trips: list[list[bytes]]
) -> None:
    durable = quote(f"sqlite:///{tmp_path}/durable.db", safe="")
    url = url_of(prefix, write_behind=durable, sync_interval="300")
    async with chatkeep.open_store(url) as tier:
        assert isinstance(tier, TieredStore)
        await tier.worker.first_sync.wait()
        s = await tier.create_session()
        await tier.append_messages(s.id, one("a"))
        trips.clear()
        await tier.append_messages(s.id, one("b"))
        assert trips == [[b"EVALSHA"]]
        keys = Keys(prefix)
        entries = await raw.xrange(keys.outbox)
        assert len(entries) == 3  # the create and both appends
        assert [m.content for m in Change.decode(s.id, entries[2][1][b"c"]).added] == ["b"]
        assert await raw.hget(keys.waiting, s.id) == b"3"
