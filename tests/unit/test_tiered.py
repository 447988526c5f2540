"""The Redis store written behind to SQLite: the outbox written with each write, reads
that fall through to the durable copy, the idle TTL, lag reporting, set-aside changes
and changes taken over from a worker that stopped answering.

Runs against the real Redis at ``$CHATKEEP_TEST_REDIS_URL``; skips when it is
unreachable, fails under ``CI=true`` (the ``raw`` and ``prefix`` fixtures).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
from test_redis_backend import prefix, raw, url_of

import chatkeep
from chatkeep import ConfigurationError, NewMessage, SessionNotFoundError
from chatkeep.stores import ops
from chatkeep.stores.outbox import Change, Verdict, coalesce
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_outbox import GROUP, forget_consumers
from chatkeep.stores.surface import StoreSurface
from chatkeep.stores.tiered import TieredStore

__all__ = ["prefix", "raw"]


def tier_url(prefix: str, durable: str, **options: str) -> str:
    return url_of(prefix, write_behind=quote(durable, safe=""), **options)


@pytest.fixture
def durable(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/durable.db"


@pytest.fixture
async def on_clock(
    prefix: str, durable: str, fake_clock: chatkeep.FakeClock
) -> AsyncIterator[TieredStore]:
    """A tier like ``tier``, on the test's fake clock."""
    url = tier_url(prefix, durable, sync_interval="300")
    async with chatkeep.open_store(url, clock=fake_clock) as store:
        assert isinstance(store, TieredStore)
        await store.worker.first_sync.wait()
        yield store


@pytest.fixture
async def tier(prefix: str, durable: str) -> AsyncIterator[TieredStore]:
    """A tier whose worker waits five minutes between syncs: tests sync by hand."""
    async with chatkeep.open_store(tier_url(prefix, durable, sync_interval="300")) as store:
        assert isinstance(store, TieredStore)
        await store.worker.first_sync.wait()
        yield store


def say(*texts: str) -> list[NewMessage]:
    return [NewMessage(role="user", content=t) for t in texts]


async def durable_history(url: str, session_id: str) -> list[tuple[int, object]]:
    async with chatkeep.open_store(url) as store:
        return [(m.seq, m.content) for m in await store.get_messages(session_id)]


async def forget(raw: aioredis.Redis, prefix: str, session_id: str) -> None:
    """Remove the session's keys from Redis, as its idle TTL would."""
    assert await raw.delete(*Keys(prefix).data(session_id)) > 0


async def test_each_write_puts_its_change_in_the_outbox(
    tier: TieredStore, raw: aioredis.Redis, prefix: str
) -> None:
    session = await tier.create_session()
    await tier.append_messages(session.id, say("a", "b"))
    with pytest.raises(chatkeep.InvalidInputError):
        await tier.append_messages(session.id, [NewMessage(role="nobody", content="x")])  # type: ignore[arg-type]
    entries = await raw.xrange(Keys(prefix).outbox)
    assert len(entries) == 2  # the create and the append; the refused write logged nothing
    change = Change.decode(session.id, entries[1][1][b"c"])
    assert [m.content for m in change.added] == ["a", "b"]
    assert change.base == (session.created_at, session.version)
    assert await raw.hget(Keys(prefix).waiting, session.id) == b"2"


async def test_sync_applies_the_outbox_and_empties_it(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, durable: str
) -> None:
    session = await tier.create_session(max_messages=2)
    for text in ("a", "b", "c"):
        await tier.append_messages(session.id, say(text))
    await tier.pop_message(session.id)
    lag = (await tier.stats()).details
    assert lag["outbox_length"] == 5
    assert isinstance(lag["sync_lag_seconds"], float)
    assert await tier.sync_now() == 5
    assert (await tier.stats()).details["outbox_length"] == 0
    assert await raw.hget(Keys(prefix).waiting, session.id) is None
    assert await durable_history(durable, session.id) == [(2, "b")]
    assert await tier.sync_now() == 0


async def test_a_session_gone_from_redis_is_read_from_the_durable_copy(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, durable: str
) -> None:
    session = await tier.create_session()
    await tier.append_messages(session.id, say("a", "b"))
    await tier.sync_now()
    await forget(raw, prefix, session.id)
    assert [m.content for m in await tier.get_messages(session.id)] == ["a", "b"]
    assert await raw.exists(Keys(prefix).session(session.id))  # warmed again
    await forget(raw, prefix, session.id)
    stored = await tier.append_messages(session.id, say("c"))
    assert [m.seq for m in stored] == [3]
    await tier.sync_now()
    await forget(raw, prefix, session.id)
    assert (await tier.get_session(session.id)).message_count == 3
    assert await durable_history(durable, session.id) == [(1, "a"), (2, "b"), (3, "c")]


async def test_a_deleted_session_is_not_brought_back_from_a_stale_copy(
    tier: TieredStore, durable: str
) -> None:
    session = await tier.create_session()
    await tier.append_messages(session.id, say("a"))
    await tier.sync_now()
    assert await tier.delete_session(session.id) is True
    with pytest.raises(SessionNotFoundError):
        await tier.get_session(session.id)  # the deletion is not synced yet
    assert await durable_history(durable, session.id) == [(1, "a")]
    await tier.sync_now()
    with pytest.raises(SessionNotFoundError):
        await durable_history(durable, session.id)


async def test_the_idle_ttl_starts_once_a_session_is_synced(
    prefix: str, durable: str, raw: aioredis.Redis
) -> None:
    url = tier_url(prefix, durable, sync_interval="300", idle_ttl="60")
    async with chatkeep.open_store(url) as tier:
        assert isinstance(tier, TieredStore)
        await tier.worker.first_sync.wait()
        session = await tier.create_session(ttl=3600)
        await tier.append_messages(session.id, say("a"))
        key = Keys(prefix).session(session.id)
        assert await raw.pttl(key) > 3600_000  # unsynced: the session's own TTL
        await tier.sync_now()
        assert 0 < await raw.pttl(key) <= 60_000


async def test_leaving_redis_never_deletes_the_durable_history(
    prefix: str, durable: str, raw: aioredis.Redis
) -> None:
    url = tier_url(prefix, durable, sync_interval="0.05", idle_ttl="0.2")
    async with chatkeep.open_store(url) as tier:
        session = await tier.create_session()
        await tier.append_messages(session.id, say("a", "b"))
        key = Keys(prefix).session(session.id)
        for _ in range(400):  # the key leaves Redis about 0.2 s after the sync
            if not await raw.exists(key):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the idle session never left Redis")
        assert await durable_history(durable, session.id) == [(1, "a"), (2, "b")]
        assert [m.content for m in await tier.get_messages(session.id)] == ["a", "b"]


async def test_a_clean_shutdown_syncs_what_is_left(prefix: str, durable: str) -> None:
    async with chatkeep.open_store(tier_url(prefix, durable, sync_interval="300")) as tier:
        session = await tier.create_session()
        await tier.append_messages(session.id, say("a", "b", "c"))
    assert await durable_history(durable, session.id) == [(1, "a"), (2, "b"), (3, "c")]


async def test_syncs_start_every_interval_and_a_long_one_is_followed_at_once(
    prefix: str, durable: str
) -> None:
    """A change waits about one interval plus one sync, not two syncs and an interval."""
    async with chatkeep.open_store(tier_url(prefix, durable, sync_interval="0.2")) as tier:
        assert isinstance(tier, TieredStore)
        worker = tier.worker
        await worker.first_sync.wait()
        loop = asyncio.get_running_loop()
        starts: list[float] = []
        four = asyncio.Event()
        real = worker.sync_now

        async def timed(seconds: float) -> int:
            starts.append(loop.time())
            if len(starts) == 4:
                four.set()
            await asyncio.sleep(seconds)
            return await real()

        async def gaps(seconds: float) -> list[float]:
            starts.clear()
            four.clear()
            worker.sync_now = lambda: timed(seconds)  # type: ignore[method-assign]
            await four.wait()
            return [b - a for a, b in itertools.pairwise(starts[:4])]

        quick = await gaps(0)
        assert all(0.19 <= gap < 0.6 for gap in quick), quick
        slow = await gaps(0.3)  # longer than the interval: the next starts at once
        assert all(0.29 <= gap < 0.45 for gap in slow), slow
        worker.sync_now = real  # type: ignore[method-assign]


async def test_a_bad_change_is_set_aside_and_the_rest_synced(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, durable: str
) -> None:
    keys = Keys(prefix)
    session = await tier.create_session()
    await raw.xadd(keys.outbox, {"s": session.id, "c": b"{not a change"})
    await tier.append_messages(session.id, say("a"))
    assert await tier.sync_now() == 2
    dead = await raw.xrange(keys.dead)
    assert len(dead) == 1
    assert b"not a change" in dead[0][1][b"why"]
    assert (await tier.health()).details["outbox_dead"] == 1
    assert await durable_history(durable, session.id) == [(1, "a")]


async def test_changes_of_a_worker_that_stopped_answering_are_taken_over(
    prefix: str, durable: str, raw: aioredis.Redis
) -> None:
    keys = Keys(prefix)
    url = tier_url(prefix, durable, sync_interval="300", claim_idle="0.2")
    async with chatkeep.open_store(url) as tier:
        assert isinstance(tier, TieredStore)
        await tier.worker.first_sync.wait()  # the consumer group exists
        session = await tier.create_session()
        await tier.append_messages(session.id, say("a", "b"))
        # another worker reads both changes, then dies before it acknowledges them
        taken = await raw.xreadgroup(GROUP, "dead-worker", {keys.outbox: ">"})
        assert len(taken[0][1]) == 2
        assert await tier.sync_now() == 0  # not idle long enough to be taken over
        await asyncio.sleep(0.3)  # the claim_idle of a silent worker
        assert await tier.sync_now() == 2
    assert await durable_history(durable, session.id) == [(1, "a"), (2, "b")]


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"write_behind": "memory://"}, "write_behind"),
        ({"write_behind": "redis://x"}, "write_behind"),
        ({"sync_interval": "1"}, "sync_interval"),
        ({"write_behind": "sqlite:///x.db", "sync_interval": "soon"}, "sync_interval"),
        ({"write_behind": "sqlite:///x.db", "sync_batch": "0"}, "sync_batch"),
    ],
)
async def test_bad_options_are_refused(prefix: str, options: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name}: "):
        await chatkeep.open_store(url_of(prefix, **options))


async def test_stats_and_health_report_the_lag(tier: TieredStore) -> None:
    session = await tier.create_session()
    await tier.append_messages(session.id, say("a"))
    health = await tier.health()
    assert health.healthy, health.issues
    assert health.backend == "redis+sqlite"
    assert health.details["outbox_length"] == 2
    stats = await tier.stats()
    assert stats.total_messages == 1
    assert stats.details["synced"] == 0


async def test_every_call_naming_a_session_gone_from_redis_finds_it(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, durable: str
) -> None:
    session = await tier.create_session(id="cold-one", tags=["t"])
    await tier.append_messages(session.id, say("a"))
    await tier.sync_now()
    await forget(raw, prefix, session.id)
    with pytest.raises(chatkeep.SessionExistsError):
        await tier.create_session(id="cold-one")
    await forget(raw, prefix, session.id)
    assert await tier.bulk_update(chatkeep.SessionFilter(tags={"t"}), {"owner": "bo"}) == 1
    await tier.sync_now()
    await forget(raw, prefix, session.id)
    assert (await tier.touch(session.id)).owner == "bo"
    await tier.sync_now()
    await forget(raw, prefix, session.id)
    assert await tier.delete_session(session.id) is True
    await tier.sync_now()
    with pytest.raises(SessionNotFoundError):
        await durable_history(durable, session.id)
    assert await tier.delete_session(session.id) is False


async def test_cleanup_reaches_expired_sessions_gone_from_redis(
    on_clock: TieredStore, prefix: str, raw: aioredis.Redis, fake_clock: chatkeep.FakeClock
) -> None:
    tier = on_clock
    old = await tier.create_session(ttl=60)
    await tier.sync_now()
    await forget(raw, prefix, old.id)
    fake_clock.advance(timedelta(minutes=5))
    assert await tier.expire_sessions() == [old.id]
    assert await tier.cleanup_expired_sessions() == 1
    await tier.sync_now()
    assert await tier.expire_sessions() == []
    everything = chatkeep.SessionFilter(include_expired=True)
    assert (await tier.durable.list_sessions(everything)).sessions == []


async def test_a_batch_merged_per_session_ends_as_the_changes_one_by_one(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, durable: str
) -> None:
    ids = [(await tier.create_session(id=f"s{i}", max_messages=4)).id for i in range(3)]
    for step in range(40):
        sid = ids[step % 3]
        await tier.append_messages(sid, say(*[f"{step}.{k}" for k in range(step % 3 + 1)]))
        if step % 7 == 3:
            await tier.pop_message(sid)
        if step % 11 == 5:
            await tier.clear_messages(sid)
        if step == 20:
            await tier.update_session(sid, {"max_messages": 2})
        if step == 30:
            await tier.delete_session(sid)
            await tier.create_session(id=sid, max_messages=5)
    entries = await raw.xrange(Keys(prefix).outbox)
    changes = [Change.decode(f[b"s"].decode(), f[b"c"]) for _, f in entries]
    async with chatkeep.open_store("memory://") as one_by_one:
        assert isinstance(one_by_one, StoreSurface)
        for change in changes:  # each on its own, in order
            async with one_by_one.transaction() as tx:
                assert await tx._call(ops.apply_change, change, write=True) is Verdict.APPLY
        expected = {sid: await one_by_one.get_messages(sid) for sid in ids}
        records = {sid: await one_by_one.get_session(sid) for sid in ids}
    assert len(coalesce(changes)) <= len(changes) // 4
    async with chatkeep.open_store(durable) as copy:  # the first half got there already
        assert isinstance(copy, StoreSurface)
        async with copy.transaction() as tx:
            for change in changes[: len(changes) // 2]:
                assert await tx._call(ops.apply_change, change, write=True) is Verdict.APPLY
    assert await tier.sync_now() == len(changes)  # merged per session, in one transaction
    assert set(await tier._apply(changes)) == {Verdict.SKIP}  # delivered again: no-op
    async with chatkeep.open_store(durable) as copy:
        assert {sid: await copy.get_messages(sid) for sid in ids} == expected
        assert {sid: await copy.get_session(sid) for sid in ids} == records
    assert {sid: await tier.get_messages(sid) for sid in ids} == expected


async def test_consumers_of_processes_long_gone_are_forgotten(
    tier: TieredStore, raw: aioredis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    await tier.create_session()
    await raw.xgroup_createconsumer(keys.outbox, GROUP, "gone-worker")
    await raw.xreadgroup(GROUP, "busy-worker", {keys.outbox: ">"})  # holds the change
    async with tier._redis.connection() as link:
        assert await forget_consumers(link, keys, 0, tier.worker.consumer) == 1
    names = {c["name"] for c in await raw.xinfo_consumers(keys.outbox, GROUP)}
    assert names == {b"busy-worker", tier.worker.consumer.encode()}
    assert await tier.sync_now() == 0  # the busy worker's change waits to be taken over
    assert (await tier.durable.list_sessions()).sessions == []


async def test_listing_shows_sessions_gone_from_redis_in_order(
    on_clock: TieredStore, prefix: str, raw: aioredis.Redis, fake_clock: chatkeep.FakeClock
) -> None:
    tier = on_clock
    for name in ("a", "b", "c", "d", "e", "f"):
        await tier.create_session(id=name, owner="o" if name != "e" else "x")
        fake_clock.advance(timedelta(seconds=1))
    await tier.sync_now()
    for name in ("b", "d", "e"):
        await forget(raw, prefix, name)
    await tier.delete_session("c")  # deleted, not yet synced: not listed

    async def walk(sort: str, limit: int) -> list[str]:
        seen, cursor = [], None
        while True:
            page = await tier.list_sessions(chatkeep.SessionFilter(owner="o"), sort, limit, cursor)
            assert len(page.sessions) <= limit
            seen += [s.id for s in page.sessions]
            cursor = page.next_cursor
            if cursor is None:
                return seen

    for limit in (1, 2, 3, 10):
        assert await walk("created_at", limit) == ["a", "b", "d", "f"], limit
        assert await walk("-created_at", limit) == ["f", "d", "b", "a"], limit
    await tier.sync_now()
    assert await walk("created_at", 2) == ["a", "b", "d", "f"]
    listed = await tier.list_sessions()
    assert [s.id for s in listed.sessions] == ["f", "e", "d", "b", "a"]


async def test_a_deleted_outbox_is_made_again(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, durable: str
) -> None:
    await raw.delete(Keys(prefix).outbox)
    with pytest.raises(chatkeep.StoreUnavailableError, match="NOGROUP"):
        await tier.sync_now()
    session = await tier.create_session()
    assert await tier.sync_now() == 1
    assert await durable_history(durable, session.id) == []


async def test_search_finds_sessions_gone_from_redis(
    on_clock: TieredStore, prefix: str, raw: aioredis.Redis, fake_clock: chatkeep.FakeClock
) -> None:
    tier = on_clock
    for name in ("a", "b", "c", "d"):
        await tier.create_session(id=name)
        await tier.append_messages(name, say(f"green apple {name}", "pear"))
        fake_clock.advance(timedelta(seconds=1))
    await tier.sync_now()
    for name in ("a", "c", "d"):
        await forget(raw, prefix, name)
    await tier.delete_session("d")  # deleted, not yet synced: not found
    hits = await tier.search_sessions("apple green")
    assert [h.session.id for h in hits] == ["c", "b", "a"]
    assert [m.content for m in hits[0].messages] == ["green apple c"]
    assert [h.session.id for h in await tier.search_sessions("apple", limit=2)] == ["c", "b"]
    assert await tier.search_sessions("plum") == []
