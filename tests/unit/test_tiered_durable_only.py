"""The Redis store written behind to SQLite, with sessions that have left Redis: counted
and exported once, reached inside ``store.transaction()``, and never brought back by a
reload or an expiry scan racing with their deletion.

Runs against the real Redis at ``$CHATKEEP_TEST_REDIS_URL``; skips when it is
unreachable, fails under ``CI=true`` (the ``raw`` and ``prefix`` fixtures).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from test_tiered import durable, durable_history, forget, on_clock, prefix, raw, say, tier

import chatkeep
from chatkeep import SessionNotFoundError
from chatkeep.stores import ops
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.tiered import TieredStore

__all__ = ["durable", "on_clock", "prefix", "raw", "tier"]


async def exported(store: TieredStore, flt: chatkeep.SessionFilter | None = None) -> list[Any]:
    lines = [json.loads(line) async for line in store.export_sessions(flt)]
    return lines[1:]  # after the header


def ids_of(lines: list[Any]) -> list[str]:
    return [line["session"]["id"] for line in lines]


async def test_stats_count_each_session_once_wherever_it_is(
    on_clock: TieredStore, raw: aioredis.Redis, prefix: str, fake_clock: chatkeep.FakeClock
) -> None:
    tier = on_clock
    await tier.create_session(id="hot", owner="ann")
    await tier.append_messages("hot", say("a"))
    await tier.create_session(id="cold", owner="ann", ttl=60)
    await tier.append_messages("cold", say("a", "b", "c"))
    await tier.create_session(id="gone")
    await tier.sync_now()
    await tier.append_messages("hot", say("b"))  # in both tiers, Redis's copy newer
    await forget(raw, prefix, "cold")
    await forget(raw, prefix, "gone")
    assert await tier.delete_session("gone") is True  # the deletion not synced yet
    fake_clock.advance(timedelta(minutes=2))
    stats = await tier.stats()
    assert (stats.total_sessions, stats.expired_sessions, stats.active_sessions) == (2, 1, 1)
    assert stats.total_messages == 5
    assert stats.sessions_by_owner == {"ann": 2}
    assert stats.details["outbox_length"] == 2
    await tier.sync_now()
    assert (await tier.stats()).total_sessions == 2
    assert not await raw.exists(Keys(prefix).session("cold"))  # counting loads nothing


async def test_export_gives_each_session_once_with_its_newest_history(
    on_clock: TieredStore, raw: aioredis.Redis, prefix: str, fake_clock: chatkeep.FakeClock
) -> None:
    tier = on_clock
    for name in ("a", "b", "c", "d", "e"):
        await tier.create_session(id=name, tags=["odd"] if name in "ace" else [])
        await tier.append_messages(name, say(f"{name}1", f"{name}2"))
        fake_clock.advance(timedelta(seconds=1))
    await tier.sync_now()
    await tier.append_messages("c", say("c3"))  # in both tiers: Redis's copy is newer
    for name in ("a", "d", "e"):
        await forget(raw, prefix, name)
    await tier.delete_session("e")  # deleted, not yet synced: not exported
    lines = await exported(tier)
    assert ids_of(lines) == ["a", "b", "c", "d"]
    history = {line["session"]["id"]: [m["content"] for m in line["messages"]] for line in lines}
    assert history == {
        "a": ["a1", "a2"],
        "b": ["b1", "b2"],
        "c": ["c1", "c2", "c3"],
        "d": ["d1", "d2"],
    }
    assert ids_of(await exported(tier, chatkeep.SessionFilter(tags={"odd"}))) == ["a", "c"]
    assert not await raw.exists(Keys(prefix).session("a"))  # exporting loads nothing
    async with chatkeep.open_store("memory://") as copy:  # the export restores whole
        report = await copy.import_sessions(tier.export_sessions())
        assert report.restored == 4
        assert [m.content for m in await copy.get_messages("a")] == ["a1", "a2"]


async def test_export_walks_more_than_a_page_of_each_tier(
    on_clock: TieredStore, raw: aioredis.Redis, prefix: str, fake_clock: chatkeep.FakeClock
) -> None:
    tier = on_clock
    names = [f"s{i:03d}" for i in range(230)]
    for name in names:
        await tier.create_session(id=name)
        fake_clock.advance(timedelta(milliseconds=1))
    await tier.sync_now()
    for name in names[::2]:  # every other session only in the durable store
        await forget(raw, prefix, name)
    assert ids_of(await exported(tier)) == names
    assert (await tier.stats()).total_sessions == 230


async def only_in_durable(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, clock: chatkeep.FakeClock, count: int
) -> list[str]:
    """``count`` sessions created 1 ms apart, synced, then gone from Redis."""
    names = [f"s{i:03d}" for i in range(count)]
    for name in names:
        await tier.create_session(id=name)
        clock.advance(timedelta(milliseconds=1))
    await tier.sync_now()
    for name in names:
        await forget(raw, prefix, name)
    return names


def arriving_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
    tier: TieredStore,
    clock: chatkeep.FakeClock,
    after: ops.Operation,
    created_at: datetime,
) -> None:
    """Once the durable store has first answered ``after``, five sessions created at
    ``created_at`` reach it (as a sync of sessions created back then would)."""
    read = tier.durable._call
    added: list[str] = []

    async def meanwhile(op: ops.Operation, *args: object, write: bool) -> Any:
        found = await read(op, *args, write=write)
        if op is after and not added:
            now = clock.now()
            clock.set(created_at)
            for k in range(5):
                added.append((await tier.durable.create_session(id=f"late{k}")).id)
            clock.set(now)
        return found

    monkeypatch.setattr(tier.durable, "_call", meanwhile)


@pytest.mark.parametrize("walk", ["export", "listing"])
async def test_a_walk_keeps_its_rows_when_sessions_reach_the_durable_store_meanwhile(
    on_clock: TieredStore,
    raw: aioredis.Redis,
    prefix: str,
    fake_clock: chatkeep.FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    walk: str,
) -> None:
    """Sessions created earlier reach the durable store while an export or a listing
    walks past them: the rows it read before are still checked against the durable
    store, none left out."""
    start = fake_clock.now()
    names = await only_in_durable(on_clock, raw, prefix, fake_clock, 120)
    at = start + timedelta(microseconds=10_500)
    if walk == "export":
        arriving_meanwhile(monkeypatch, on_clock, fake_clock, ops.export_page, at)
        assert ids_of(await exported(on_clock)) == names
    else:
        arriving_meanwhile(monkeypatch, on_clock, fake_clock, ops.list_sessions, at)
        page = await on_clock.list_sessions(sort="created_at", limit=20)
        assert [s.id for s in page.sessions] == names[:20]


async def test_a_bad_export_filter_is_refused_before_anything_is_read(tier: TieredStore) -> None:
    with pytest.raises(chatkeep.InvalidInputError, match="filter"):
        await exported(tier, "everything")  # type: ignore[arg-type]


async def test_a_transaction_loads_back_the_sessions_it_names(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, durable: str
) -> None:
    for name in ("one", "two"):
        await tier.create_session(id=name, tags=["t"])
        await tier.append_messages(name, say(f"{name} a"))
    await tier.sync_now()
    await forget(raw, prefix, "one")
    await forget(raw, prefix, "two")
    async with tier.transaction() as tx:
        assert [m.content for m in await tx.get_messages("one")] == ["one a"]
        await tx.append_messages("one", say("one b"))
        with pytest.raises(chatkeep.SessionExistsError):
            await tx.create_session(id="two")
        fresh = await tx.create_session(tags=["t"])
        await tx.append_messages(fresh.id, say("fresh"))  # created in the block: no reload
        listed = await tx.list_sessions(chatkeep.SessionFilter(tags={"t"}))
        assert {s.id for s in listed.sessions} == {"one", "two", fresh.id}
    await tier.sync_now()
    assert await durable_history(durable, "one") == [(1, "one a"), (2, "one b")]
    assert await durable_history(durable, fresh.id) == [(1, "fresh")]
    await forget(raw, prefix, "two")
    async with tier.transaction() as tx:
        assert await tx.bulk_update(chatkeep.SessionFilter(tags={"t"}), {"owner": "bo"}) == 3
    assert (await tier.get_session("two")).owner == "bo"


async def test_a_session_loaded_back_after_the_block_walked_it_ends_the_block(
    tier: TieredStore, raw: aioredis.Redis, prefix: str
) -> None:
    """A listing inside the block walked the session's stale listing entry in Redis and
    found no record: the block cannot commit once the session is loaded back."""
    await tier.create_session(id="two")
    await tier.sync_now()
    await forget(raw, prefix, "two")
    with pytest.raises(chatkeep.TransactionConflictError, match="'two' was loaded back"):
        async with tier.transaction() as tx:
            assert [s.id for s in (await tx.list_sessions()).sessions] == ["two"]
            await tx.append_messages("two", say("x"))
    assert await tier.get_messages("two") == []  # nothing of the block was written
    async with tier.transaction() as tx:  # run again: the session is in Redis now
        await tx.append_messages("two", say("x"))
    assert [m.content for m in await tier.get_messages("two")] == ["x"]


async def test_a_transaction_does_not_bring_back_a_deleted_session(
    tier: TieredStore, raw: aioredis.Redis, prefix: str
) -> None:
    await tier.create_session(id="old")
    await tier.sync_now()
    await tier.delete_session("old")  # not synced yet: the durable copy is stale
    async with tier.transaction() as tx:
        with pytest.raises(SessionNotFoundError):
            await tx.get_session("old")
        assert await tx.delete_session("old") is False
    with pytest.raises(RuntimeError, match="ended"):
        await tx.get_session("old")


async def test_a_reload_racing_with_a_delete_does_not_bring_the_session_back(
    tier: TieredStore, raw: aioredis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload reads the durable copy; the session is deleted, and the deletion
    synced, before the reload writes the copy into Redis."""
    await tier.create_session(id="x")
    await tier.append_messages("x", say("a"))
    await tier.sync_now()
    await forget(raw, prefix, "x")
    load = tier.durable._call
    deleting: list[asyncio.Task[None]] = []

    async def delete_and_sync() -> None:
        assert await tier.delete_session("x") is True
        await tier.sync_now()

    async def racing(op: ops.Operation, *args: object, write: bool) -> Any:
        found = await load(op, *args, write=write)
        if op is ops.load_session and not deleting:
            deleting.append(asyncio.create_task(delete_and_sync()))
            # the delete runs to its end here unless the reload holds it off
            await asyncio.wait(deleting, timeout=1.0)
        return found

    monkeypatch.setattr(tier.durable, "_call", racing)
    try:
        messages = await tier.get_messages("x")  # read before the delete: still there
    except SessionNotFoundError:
        messages = []  # or after it
    await deleting[0]
    assert [m.content for m in messages] in ([], ["a"])
    with pytest.raises(SessionNotFoundError):
        await tier.get_session("x")
    assert not await raw.exists(Keys(prefix).session("x"))


async def test_an_expiry_scan_racing_with_a_synced_delete_does_not_list_it(
    on_clock: TieredStore,
    raw: aioredis.Redis,
    prefix: str,
    fake_clock: chatkeep.FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scan reads the durable store's expired sessions; one of them is deleted, and
    the deletion synced, before the scan checks that it is absent from Redis."""
    tier = on_clock
    for name in ("x", "y"):
        await tier.create_session(id=name, ttl=60)
    await tier.sync_now()
    await forget(raw, prefix, "x")
    await forget(raw, prefix, "y")
    fake_clock.advance(timedelta(minutes=5))
    scan = tier.durable._call
    raced: list[bool] = []

    async def racing(op: ops.Operation, *args: object, write: bool) -> Any:
        found = await scan(op, *args, write=write)
        if op is ops.expired_ids and not raced:
            raced.append(True)
            assert await tier.delete_session("x") is True
            await tier.sync_now()
        return found

    monkeypatch.setattr(tier.durable, "_call", racing)
    assert await tier.expire_sessions() == ["y"]
