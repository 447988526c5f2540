"""Bad values written by hand into a Redis store's keys (layout: ``redis_keys``).

The session whose key is damaged raises CorruptDataError naming it; every other session
keeps working. A listing reads the records of the sessions it walks, so a listing that
reaches a record that cannot be decoded raises CorruptDataError naming that session
(it does not skip it, and does not fail with any other error); a listing that does not
reach it (another owner's) works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

import chatkeep
from chatkeep import CorruptDataError, FakeClock, NewMessage, SessionFilter, Store
from chatkeep.stores.redis_keys import Keys

Damage = Callable[[aioredis.Redis, Keys], Awaitable[object]]


async def bad_json(raw: aioredis.Redis, keys: Keys) -> None:
    await raw.set(keys.session("bad"), b"{not json")


async def missing_fields(raw: aioredis.Redis, keys: Keys) -> None:
    await raw.set(keys.session("bad"), b'{"id": "bad"}')


async def another_session(raw: aioredis.Redis, keys: Keys) -> None:
    record = await raw.get(keys.session("good"))
    assert record is not None
    await raw.set(keys.session("bad"), record)


async def record_of_wrong_type(raw: aioredis.Redis, keys: Keys) -> None:
    await raw.delete(keys.session("bad"))
    await raw.hset(keys.session("bad"), "id", "bad")


async def bad_message(raw: aioredis.Redis, keys: Keys) -> None:
    await raw.zadd(keys.messages("bad"), {b'{"seq": [': 1.5})


async def messages_of_wrong_type(raw: aioredis.Redis, keys: Keys) -> None:
    await raw.delete(keys.messages("bad"))
    await raw.set(keys.messages("bad"), b"a string")


UNDECODABLE_RECORDS = [bad_json, missing_fields, another_session]


@pytest.fixture
async def store(shared_redis_url: str, fake_clock: FakeClock) -> AsyncIterator[Store]:
    """A store with sessions ``bad`` (owner mallory) and ``good`` (owner alice)."""
    async with chatkeep.open_store(shared_redis_url, clock=fake_clock) as opened:
        for sid, owner in (("bad", "mallory"), ("good", "alice")):
            await opened.create_session(id=sid, owner=owner)
            await opened.append_messages(sid, [NewMessage("user", f"{sid} fine")])
        yield opened


@pytest.fixture
async def raw(shared_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    parts = urlsplit(shared_redis_url)
    client = aioredis.Redis.from_url(urlunsplit(parts._replace(query="")), protocol=2)
    yield client
    await client.aclose()


@pytest.fixture
def keys(shared_redis_url: str) -> Keys:
    return Keys(dict(parse_qsl(urlsplit(shared_redis_url).query))["prefix"])


async def assert_good_works(store: Store) -> None:
    assert (await store.get_session("good")).owner == "alice"
    stored = await store.append_messages("good", [NewMessage("user", "good more")])
    assert [m.seq for m in stored] == [2]
    contents = [m.content for m in await store.get_messages("good")]
    assert contents == ["good fine", "good more"]
    page = await store.list_sessions(SessionFilter(owner="alice"))
    assert [s.id for s in page.sessions] == ["good"]


async def assert_health_names_bad_only(store: Store) -> None:
    report = await store.health()
    assert not report.healthy
    assert any("'bad'" in issue for issue in report.issues)
    assert all("session 'bad'" in issue for issue in report.issues)


@pytest.mark.parametrize("damage", [*UNDECODABLE_RECORDS, record_of_wrong_type])
async def test_a_bad_record_fails_its_session_only(
    store: Store, raw: aioredis.Redis, keys: Keys, damage: Damage
) -> None:
    await damage(raw, keys)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.get_session("bad")
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.get_messages("bad")
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.append_messages("bad", [NewMessage("user", "more")])
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.delete_session("bad")
    await assert_good_works(store)


@pytest.mark.parametrize("damage", UNDECODABLE_RECORDS)
async def test_a_listing_that_reaches_a_bad_record_raises_naming_it(
    store: Store, raw: aioredis.Redis, keys: Keys, damage: Damage
) -> None:
    await damage(raw, keys)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.list_sessions()
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.list_sessions(SessionFilter(owner="mallory"))
    await assert_health_names_bad_only(store)
    await assert_good_works(store)


async def test_a_listing_that_reaches_a_record_of_the_wrong_type_raises_naming_it(
    store: Store, raw: aioredis.Redis, keys: Keys
) -> None:
    await record_of_wrong_type(raw, keys)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.list_sessions()
    await assert_health_names_bad_only(store)


@pytest.mark.parametrize("damage", [bad_message, messages_of_wrong_type])
async def test_bad_messages_fail_reading_that_session_only(
    store: Store, raw: aioredis.Redis, keys: Keys, damage: Damage
) -> None:
    await damage(raw, keys)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.get_messages("bad")
    assert (await store.get_session("bad")).owner == "mallory"
    assert {s.id for s in (await store.list_sessions()).sessions} == {"bad", "good"}
    await assert_health_names_bad_only(store)
    await assert_good_works(store)


@pytest.mark.parametrize("damage", [bad_message, messages_of_wrong_type])
async def test_a_search_that_reaches_bad_messages_raises_naming_the_session(
    store: Store, raw: aioredis.Redis, keys: Keys, damage: Damage
) -> None:
    await damage(raw, keys)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.search_sessions("fine")
    hits = await store.search_sessions("fine", owner="alice")
    assert [h.session.id for h in hits] == ["good"]
