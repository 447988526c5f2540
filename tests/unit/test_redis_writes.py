"""The native TTL of a session's keys (garbage collection): set when a write needs it,
kept by the others, and never missing from a key that a write creates.

The rule (:func:`~chatkeep.stores.redis_writes.refreshes`) is tested on its own, then on
the real Redis at ``$CHATKEEP_TEST_REDIS_URL`` (skips when it is unreachable, fails
under ``CI=true``): a test lowers the TTL Redis holds to a marker, so that a write
which sets it again is seen, and so is one that does not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
import redis.asyncio as aioredis
from listing_reference import make_session
from test_redis_backend import prefix, raw, url_of
from test_tiered import durable, say, tier_url

import chatkeep
from chatkeep import FakeClock, Store
from chatkeep.core.models import Session, evolve
from chatkeep.stores.redis import RedisBackend
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_writes import GC_GRACE, bucket, refreshes
from chatkeep.stores.remote import RemoteStore
from chatkeep.stores.tiered import TieredStore

__all__ = ["durable", "prefix", "raw"]

MARK = 3_600_000
"""A TTL (ms) below any the store sets for a session of a day: a key still below it
after a write kept its TTL; one above it had its TTL set by the write."""
DAY = timedelta(days=1)


@pytest.fixture
async def store(prefix: str, fake_clock: FakeClock) -> AsyncIterator[Store]:
    async with chatkeep.open_store(url_of(prefix), clock=fake_clock) as opened:
        yield opened


async def mark(raw: aioredis.Redis, prefix: str, session_id: str) -> None:
    """Lower the TTL of the session's keys to :data:`MARK`."""
    for key in Keys(prefix).data(session_id):
        assert await raw.pexpire(key, MARK)


async def ttls(raw: aioredis.Redis, prefix: str, session_id: str) -> list[int]:
    """The PTTL of the session's record, messages and id index (-2: no key, -1: no TTL)."""
    return [await raw.pttl(key) for key in Keys(prefix).data(session_id)]


def kept(found: list[int]) -> bool:
    """Every key exists and still has the marked TTL."""
    return all(0 < ttl <= MARK for ttl in found)


def set_again(found: list[int]) -> bool:
    """Every key exists with a TTL set after the marking (a day and more)."""
    return all(ttl > DAY // timedelta(milliseconds=1) for ttl in found)


# -- the rule ---------------------------------------------------------------------------


def a_session(expires_at: datetime | None) -> Session:
    return make_session("s", expires_at=expires_at, ttl=None, max_messages=10)


def test_the_ttl_is_set_when_the_rule_needs_it() -> None:
    start = FakeClock().now()  # midnight: the start of a bucket
    old = a_session(start + timedelta(hours=1))
    same = evolve(old, expires_at=start + timedelta(hours=11))
    crossed = evolve(old, expires_at=start + GC_GRACE / 2)
    assert bucket(same.expires_at) == bucket(old.expires_at)  # type: ignore[arg-type]
    assert not refreshes(old, same, None, False)
    assert refreshes(old, crossed, None, False)
    assert refreshes(crossed, old, None, False)  # moved back: set lower
    assert refreshes(None, old, None, False)  # a new session
    assert refreshes(old, same, 60_000, False)  # an idle TTL moves on every write
    assert refreshes(old, same, None, True)  # logged: lifts the cap of a sync
    forever = evolve(old, expires_at=None)
    assert refreshes(forever, old, None, False)  # expiry set
    assert refreshes(old, forever, None, False)  # expiry cleared
    assert not refreshes(forever, forever, None, False)


# -- on Redis -----------------------------------------------------------------------------


async def test_a_write_in_the_same_bucket_keeps_the_ttl_and_one_past_it_sets_it(
    store: Store, raw: aioredis.Redis, prefix: str, fake_clock: FakeClock
) -> None:
    session = await store.create_session(ttl=DAY)
    await store.append_messages(session.id, say("a"))
    await mark(raw, prefix, session.id)
    fake_clock.advance(timedelta(hours=1))  # expires_at stays in its bucket
    await store.append_messages(session.id, say("b"))
    assert kept(await ttls(raw, prefix, session.id))  # the record's too (KEEPTTL)
    fake_clock.advance(GC_GRACE / 2)  # expires_at moves into the next bucket
    await store.append_messages(session.id, say("c"))
    assert set_again(await ttls(raw, prefix, session.id))


async def test_a_new_session_and_its_first_messages_get_a_ttl(
    store: Store, raw: aioredis.Redis, prefix: str
) -> None:
    session = await store.create_session(ttl=60)
    record, messages, ids = await ttls(raw, prefix, session.id)
    assert record > GC_GRACE // timedelta(milliseconds=1)
    assert (messages, ids) == (-2, -2)
    await store.append_messages(session.id, say("a"))  # creates the message keys
    assert all(ttl > 0 for ttl in await ttls(raw, prefix, session.id))


@pytest.mark.parametrize("how", ["clear", "delete", "window"])
async def test_message_keys_created_again_get_a_ttl(
    store: Store, raw: aioredis.Redis, prefix: str, how: str
) -> None:
    """Every stored message gone (the keys deleted), then new ones: in a later write
    (clear, delete the last) or in the same one (a window of one drops the last)."""
    session = await store.create_session(ttl=DAY, max_messages=1)
    (first,) = await store.append_messages(session.id, say("a"))
    await mark(raw, prefix, session.id)
    if how == "clear":
        assert await store.clear_messages(session.id) == 1
    elif how == "delete":
        assert await store.pop_message(session.id) == first
    if how != "window":
        assert (await ttls(raw, prefix, session.id))[1:] == [-2, -2]
    await store.append_messages(session.id, say("b"))
    record, *created = await ttls(raw, prefix, session.id)
    assert 0 < record <= MARK
    assert all(ttl > MARK for ttl in created)
    assert [m.content for m in await store.get_messages(session.id)] == ["b"]


async def test_setting_and_clearing_the_expiry_sets_and_drops_the_ttl(
    store: Store, raw: aioredis.Redis, prefix: str, fake_clock: FakeClock
) -> None:
    session = await store.create_session(ttl=None)
    await store.append_messages(session.id, say("a"))
    assert await ttls(raw, prefix, session.id) == [-1, -1, -1]
    await store.append_messages(session.id, say("b"))
    assert await ttls(raw, prefix, session.id) == [-1, -1, -1]
    await store.set_expiration(session.id, fake_clock.now() + DAY)
    assert set_again(await ttls(raw, prefix, session.id))
    await mark(raw, prefix, session.id)
    await store.set_expiration(session.id, None)
    assert await ttls(raw, prefix, session.id) == [-1, -1, -1]
    await store.update_session(session.id, {"ttl": 7 * 86400})
    assert set_again(await ttls(raw, prefix, session.id))


async def test_an_idle_ttl_is_set_on_every_write(
    prefix: str, raw: aioredis.Redis, fake_clock: FakeClock
) -> None:
    backend = await RedisBackend.open(url_of(prefix), {"prefix": prefix})
    backend.idle_millis = 2 * MARK
    async with RemoteStore(backend, clock=fake_clock) as store:
        session = await store.create_session(ttl=DAY)
        await store.append_messages(session.id, say("a"))
        assert all(MARK < ttl <= 2 * MARK for ttl in await ttls(raw, prefix, session.id))
        await mark(raw, prefix, session.id)
        await store.append_messages(session.id, say("b"))
        assert all(MARK < ttl <= 2 * MARK for ttl in await ttls(raw, prefix, session.id))


@pytest.mark.parametrize("ttl", [DAY, None])
async def test_a_write_after_a_sync_lifts_the_idle_ttl_until_it_is_synced(
    prefix: str, durable: str, raw: aioredis.Redis, ttl: timedelta | None
) -> None:
    url = tier_url(prefix, durable, sync_interval="300", idle_ttl="60")
    async with chatkeep.open_store(url) as tier:
        assert isinstance(tier, TieredStore)
        await tier.worker.first_sync.wait()
        session = await tier.create_session(ttl=ttl)
        await tier.append_messages(session.id, say("a"))
        await tier.sync_now()
        assert all(0 < left <= 60_000 for left in await ttls(raw, prefix, session.id))
        await tier.append_messages(session.id, say("b"))  # not synced: must stay
        found = await ttls(raw, prefix, session.id)
        assert set_again(found) if ttl else found == [-1, -1, -1]
        await tier.sync_now()
        assert all(0 < left <= 60_000 for left in await ttls(raw, prefix, session.id))
